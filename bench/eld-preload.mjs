// Loaded into a benchmarked turret with NODE_OPTIONS=--import (bench/scrub-latency.ts): the
// event loop's delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution) since the last SIGUSR2,
// written to $BENCH_ELD_FILE (ms) at each SIGUSR2, then reset. The proxy runs as shipped.
import { renameSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
let seq = 0;
process.on('SIGUSR2', () => {
  const ms = (ns) => ns / 1e6;
  const file = process.env.BENCH_ELD_FILE;
  // Written aside and renamed: the bench never reads a half-written report.
  writeFileSync(`${file}.tmp`, JSON.stringify({ seq: ++seq, p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), count: h.count }));
  renameSync(`${file}.tmp`, file);
  h.reset();
});
