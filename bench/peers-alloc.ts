/**
 * Developer aid for the hot path (not registered in bench/run.ts): the turret's (dist/) JavaScript
 * heap allocation per small request, a number the shared 2-core machine does not disturb (it
 * repeats within ±0.3 KiB between runs at any load, where CPU per request moves by ±15%).
 *
 *   node --import tsx bench/peers-alloc.ts https|http|handle
 *
 * A preload runs `v8.GCProfiler` over each measured window: heap used before each collection
 * minus after the previous one, summed, plus the growth since the last one, divided by the
 * requests (the cpu bench's 8-connection loop). Also prints the main thread's GC pauses per request.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { allocRun } from './alloc-loop.js';

const scenario = process.argv[2] ?? 'https';
const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-alloc-'));
const out = path.join(dir, 'gc.json');
const preload = path.join(dir, 'gc.mjs');
// SIGUSR2 starts a window, SIGUSR1 ends it and writes the sums (same-thread, synchronous).
writeFileSync(
  preload,
  `import v8 from 'node:v8'; import { writeFileSync } from 'node:fs';
let p = null; let h0 = 0;
process.on('SIGUSR2', () => { p = new v8.GCProfiler(); p.start(); h0 = v8.getHeapStatistics().used_heap_size; });
process.on('SIGUSR1', () => { const r = p.stop(); const h1 = v8.getHeapStatistics().used_heap_size; let alloc = 0, prev = h0, us = 0;
  for (const s of r.statistics) { alloc += s.beforeGC.heapStatistics.usedHeapSize - prev; prev = s.afterGC.heapStatistics.usedHeapSize; us += s.cost; }
  writeFileSync(${JSON.stringify(out)}, JSON.stringify({ alloc: alloc + h1 - prev, gcs: r.statistics.length, us })); });\n`,
);
try {
  await allocRun(scenario, preload, async (window) => {
    for (let round = 0; round < 2; round++) {
      const w = await window();
      rmSync(out, { force: true });
      const g = JSON.parse(await w.collect(out)) as { alloc: number; gcs: number; us: number };
      console.log(
        `${scenario}: ${w.count} requests, ${(g.alloc / w.count / 1024).toFixed(1)} KiB allocated per request, ${g.gcs} collections, ${(g.us / w.count).toFixed(1)} µs of GC pause per request`,
      );
    }
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
