/**
 * Developer aid for `npm run bench -- peers` (not registered in bench/run.ts): runs turret
 * (dist/) under `--cpu-prof` with the peers bench's rules and upstreams, drives one scenario,
 * and prints the functions with the most self time, so a slow number can be traced to code.
 *
 *   node --import tsx bench/peers-profile.ts https|http|handle|big|newhost [--keep] [--many]
 *
 * `big` downloads the 10 MB body over HTTPS; `newhost` sends one request to each of 30 new names;
 * `--many` configures 20 file and 20 store secrets besides the bench's one (bench/cpu.ts).
 * `--keep` keeps the profile; `node bench/profile-busy.mjs DIR` groups its self time by file as a
 * share of the busy samples.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { manySecrets } from './cpu.js';
import { closedLoop, download, firstRequests, httpClient, httpsClient, type Client } from './peers-load.js';
import { startUpstreams, turretSubject } from './peers.js';
import { procStats } from './peers-procs.js';
import { BIG_BYTES } from './peers-upstream.js';

interface Node {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: Node[];
  samples: number[];
}

function top(file: string, n: number): string[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  for (const id of p.samples) {
    const f = byId.get(id)?.callFrame;
    const key = f ? `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|dist|node:)/, '$1')}:${f.lineNumber + 1}` : '?';
    self.set(key, (self.get(key) ?? 0) + 1);
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((100 * v) / p.samples.length).toFixed(1).padStart(5)}%  ${k}`)
    .concat(byFile(p, byId), inclusive(p, byId));
}

/** Inclusive time of turret's own functions (dist/), each counted once per stack. */
function inclusive(p: Profile, byId: Map<number, Node>): string[] {
  const self = new Map<number, number>();
  for (const id of p.samples) self.set(id, (self.get(id) ?? 0) + 1);
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const total = new Map<string, number>();
  for (const [id, count] of self) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)?.callFrame;
      if (!f?.url.includes('/dist/')) continue;
      const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/dist\//, 'dist/')}:${f.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      total.set(key, (total.get(key) ?? 0) + count);
    }
  }
  return ['', 'inclusive time, turret functions:'].concat(
    [...total.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 30)
      .map(([k, v]) => `${((100 * v) / p.samples.length).toFixed(1).padStart(5)}%  ${k}`),
  );
}

/** Self time summed per source file (dist/ modules, node internals, native). */
function byFile(p: Profile, byId: Map<number, Node>): string[] {
  const files = new Map<string, number>();
  for (const id of p.samples) {
    const u = byId.get(id)?.callFrame.url ?? '';
    const key = u.includes('/dist/')
      ? u.replace(/^.*\/dist\//, 'dist/')
      : u.includes('node_modules/')
        ? u.replace(/^.*node_modules\/([^/]+).*$/, 'node_modules/$1')
        : u.startsWith('node:')
          ? u
          : `(native) ${byId.get(id)?.callFrame.functionName ?? ''}`;
    files.set(key, (files.get(key) ?? 0) + 1);
  }
  return ['', 'self time by file:'].concat(
    [...files.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 20)
      .map(([k, v]) => `${((100 * v) / p.samples.length).toFixed(1).padStart(5)}%  ${k}`),
  );
}

const scenario = process.argv[2] ?? 'https';
const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-prof-'));
// `--cpu-prof` is refused in NODE_OPTIONS, `--import` is not: a preload starts the inspector's
// profiler on SIGUSR2 (after a warm-up, so start-up and first connections stay out) and writes
// the profile on exit (same-thread Session.post calls back synchronously).
const preload = path.join(dir, 'cpuprof.mjs');
writeFileSync(
  preload,
  `import inspector from 'node:inspector'; import { writeFileSync } from 'node:fs';
const s = new inspector.Session(); s.connect(); s.post('Profiler.enable'); s.post('Profiler.setSamplingInterval', { interval: 200 }); process.on('SIGUSR2', () => s.post('Profiler.start'));
process.on('exit', () => s.post('Profiler.stop', (e, r) => { if (!e) writeFileSync(${JSON.stringify(path.join(dir, 'turret.cpuprofile'))}, JSON.stringify(r.profile)); }));\n`,
);
const up = await startUpstreams();
const many = process.argv.includes('--many') ? manySecrets(dir) : null;
const { subject: s, stop, caDir } = await turretSubject(up.ports, true, 'turret', { NODE_OPTIONS: `--import=${preload}`, ...many?.env }, many?.entries ?? []);
many?.fillStore(caDir);
const load = { concurrency: 16, warmupMs: 700, durationMs: 3_000, maxRequests: 300_000 };
try {
  const hosts = Array.from({ length: 30 }, (_, i) => `h${i}.turret.test`);
  const headers = scenario === 'handle' ? (s.variants['with handle injection'] ?? {}) : {};
  const client = (connections: number): Client =>
    (scenario === 'http' ? httpClient : httpsClient)(s.route, scenario === 'http' ? up.ports.http : up.ports.https, 'echo.turret.test', connections);
  const smallLoop = async (durationMs: number): Promise<{ rps: number; count: number }> => {
    const c = client(16);
    try {
      return await closedLoop(() => c.get('/small', headers), { ...load, durationMs });
    } finally {
      await c.close();
    }
  };
  const fresh = (h: string): Client => httpsClient(s.route, up.ports.https, h, 1);
  // Warm-up (newhost warms on one known host only), then start the profiler.
  if (scenario === 'newhost') await firstRequests(fresh, ['echo.turret.test']);
  else await smallLoop(1_500);
  process.kill(s.pid ?? 0, 'SIGUSR2');
  const cpu0 = procStats(s.pid ?? 0).cpuMs;
  let r: { rps: number; count: number };
  if (scenario === 'newhost') r = { rps: await firstRequests(fresh, hosts), count: hosts.length };
  else if (scenario === 'big') {
    const c = client(1);
    r = { rps: await download(c, BIG_BYTES, { maxRuns: 5, maxMs: 5_000 }), count: 6 };
    await c.close();
  } else r = await smallLoop(load.durationMs);
  console.log(`${scenario}: ${r.rps.toFixed(1)} (req/s, MB/s or median ms), turret CPU ${(procStats(s.pid ?? 0).cpuMs - cpu0).toFixed(0)} ms for ~${r.count} requests`);
} finally {
  await stop();
  up.stop();
}
const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
if (file) console.log(top(path.join(dir, file), 25).join('\n'));
else console.log('no profile was written');
if (process.argv.includes('--keep')) console.log(`profile kept in ${dir}`);
else rmSync(dir, { recursive: true, force: true });
