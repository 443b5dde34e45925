/**
 * Developer aid for the hot path (not registered in bench/run.ts): where the turret's (dist/)
 * per-request allocations come from. V8's sampling heap profiler runs over a measured window of
 * the peers-alloc loop, counting objects the GC has already collected too (what a short-lived
 * request allocates), and prints bytes per request by allocating function and by the nearest
 * turret function on the stack.
 *
 *   node --import tsx bench/peers-alloc-sites.ts https|http|handle [TOP] [--no-inline]
 *
 * An optimized function's allocations are reported as its outermost caller's, inlined callees
 * included; `--no-inline` turns TurboFan's inlining off in the turret so each function reports its own.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { allocRun } from './alloc-loop.js';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

const scenario = process.argv[2] ?? 'https';
const topN = Number(process.argv[3] ?? 40);
const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-sites-'));
const out = path.join(dir, 'heap.json');
const preload = path.join(dir, 'heap.mjs');
// SIGUSR2 starts sampling (every 64 bytes, collected objects included), SIGUSR1 writes the
// profile's tree (renamed into place whole, so a partial file is never read).
writeFileSync(
  preload,
  `import { Session } from 'node:inspector'; import { renameSync, writeFileSync } from 'node:fs';
${process.argv.includes('--no-inline') ? "import v8 from 'node:v8'; v8.setFlagsFromString('--no-turbo-inlining');" : ''}
const s = new Session(); s.connect();
process.on('SIGUSR2', () => s.post('HeapProfiler.enable', () => s.post('HeapProfiler.startSampling', { samplingInterval: 64, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })));
process.on('SIGUSR1', () => s.post('HeapProfiler.stopSampling', (err, r) => {
  writeFileSync(${JSON.stringify(out + '.part')}, JSON.stringify(err ? { error: String(err) } : { head: r.profile.head }));
  renameSync(${JSON.stringify(out + '.part')}, ${JSON.stringify(out)});
}));\n`,
);

function label(f: HeapNode['callFrame']): string {
  const u = f.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^file:\/\//, '');
  return `${f.functionName || '(anonymous)'} ${u}:${f.lineNumber + 1}`;
}

function report(head: HeapNode, requests: number): void {
  const self = new Map<string, number>();
  const byTurret = new Map<string, number>();
  const pairs = new Map<string, number>();
  let total = 0;
  const walk = (n: HeapNode, stack: HeapNode['callFrame'][]): void => {
    const st = [...stack, n.callFrame];
    if (n.selfSize > 0) {
      total += n.selfSize;
      const k = label(n.callFrame);
      self.set(k, (self.get(k) ?? 0) + n.selfSize);
      const t = [...st].reverse().find((f) => f.url.includes('/dist/'));
      const tk = t ? label(t) : '(no turret frame)';
      byTurret.set(tk, (byTurret.get(tk) ?? 0) + n.selfSize);
      const pk = `${tk}  <-  ${k}`;
      pairs.set(pk, (pairs.get(pk) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c, st);
  };
  walk(head, []);
  const fmt = (m: Map<string, number>): string =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([k, v]) => `${(v / requests).toFixed(0).padStart(7)} B  ${k}`)
      .join('\n');
  console.log(`${scenario}: ${requests} requests, ${(total / requests / 1024).toFixed(1)} KiB sampled per request`);
  console.log(`-- by allocating function\n${fmt(self)}\n-- by nearest turret function on the stack\n${fmt(byTurret)}\n-- by both\n${fmt(pairs)}`);
}

try {
  await allocRun(scenario, preload, async (window) => {
    const w = await window();
    const p = JSON.parse((await w.collect(out)) || '{}') as { head?: HeapNode; error?: string };
    if (!p.head) throw new Error(`no profile: ${p.error ?? 'timed out'}`);
    report(p.head, w.count);
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
