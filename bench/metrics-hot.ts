/**
 * Developer aid for the hot path (not registered in bench/run.ts): the in-process cost of the
 * metric updates one finished request makes (turret_requests_total, request_duration_seconds,
 * upstream_latency_seconds, audit_records_total), on a built tree's dist/, in ns and bytes
 * allocated per request. Give another tree's dist/ to compare builds (A/B, alternated):
 *
 *   node --import tsx bench/metrics-hot.ts [DIST] [--rounds N]
 *
 * A tree from before metrics/hot.ts (prom-client's inc/observe with labels objects) is driven
 * the way its stages called it; a tree with hot.ts the way finish.ts and pipeline.ts call it now.
 * Allocation is v8.GCProfiler's heap used before each collection minus after the previous one.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';

const args = process.argv.slice(2);
const dist = path.resolve(args.find((a) => !a.startsWith('--')) ?? 'dist');
const roundsAt = args.indexOf('--rounds');
const rounds = roundsAt >= 0 ? Number(args[roundsAt + 1]) : 5;
const N = 500_000;

type Any = Record<string, any>;
const { createMetrics } = (await import(pathToFileURL(path.join(dist, 'metrics/metrics.js')).href)) as { createMetrics: (o: object) => Any };
const m = createMetrics({ defaultMetrics: false });
const hot = typeof m.requests.at === 'function';
const SCHEME = { https: { scheme: 'https' } } as const;
const agent = 'agent-a';
const durations = Float64Array.from({ length: 64 }, (_, i) => 0.00015 + i * 3e-6);

function request(i: number, code: string | undefined, out: string): void {
  const decision = out === 'completed' ? 'allowed' : out;
  const d = durations[i & 63] as number;
  if (hot) {
    m.upstreamLatency.at('https').observe(d / 2);
    m.requests.at(agent, decision, code ?? 'none').inc();
    m.requestDuration.at(decision).observe(d);
    m.auditRecords.at('request', out).inc();
  } else {
    m.upstreamLatency.observe(SCHEME.https, d / 2);
    m.requests.inc({ agent, decision, code: code ?? 'none' });
    m.requestDuration.observe({ decision }, d);
    m.auditRecords.inc({ event: 'request', outcome: out });
  }
}

function run(): { ns: number; bytes: number } {
  const p = new v8.GCProfiler();
  p.start();
  const h0 = v8.getHeapStatistics().used_heap_size;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) request(i, undefined, 'completed');
  const ns = Number(process.hrtime.bigint() - t0) / N;
  const h1 = v8.getHeapStatistics().used_heap_size;
  const r = p.stop();
  let alloc = 0;
  let prev = h0;
  for (const s of r.statistics) {
    alloc += s.beforeGC.heapStatistics.usedHeapSize - prev;
    prev = s.afterGC.heapStatistics.usedHeapSize;
  }
  return { ns, bytes: (alloc + h1 - prev) / N };
}

// Warm up with every outcome once, so the measured loop is the steady state of a busy proxy.
for (const [code, out] of [
  [undefined, 'completed'],
  ['policy_denied', 'denied'],
  ['upstream_failed', 'failed'],
] as const)
  for (let i = 0; i < 50_000; i++) request(i, code, out);
const res = Array.from({ length: rounds }, run);
const min = Math.min(...res.map((r) => r.ns));
const bytes = Math.min(...res.map((r) => r.bytes));
console.log(
  `${hot ? 'hot.ts' : 'prom-client'} ${dist}: min ${min.toFixed(0)} ns, ${bytes.toFixed(0)} B allocated per request (4 updates); runs ${res.map((r) => r.ns.toFixed(0)).join(' ')} ns`,
);
