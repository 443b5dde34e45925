/**
 * Scrubbing cost at the proxy: a 100 MB response through a real turret (dist/) over an
 * intercepted CONNECT tunnel, downloaded by curl, compared in one run:
 *
 *   unscrubbed — a turret whose `scrub.content_types` excludes the body's type (no scrubber)
 *   json       — the default turret (everything scanned), pretty-printed JSON-like body
 *   binary     — the default turret, random bytes
 *
 * Reports throughput (MB/s, curl's average download speed; median over rounds in which the modes
 * alternate), the proxy's CPU per MB (utime + stime of its process, and of its main thread
 * alone: the event loop, where the scan runs; docs/benchmarks.md "Scrubbing → Eighth round")
 * and its peak RSS (VmHWM of the turret process, MB; one process per mode so each peak is its
 * own). Also the scrubber alone
 * (in process, 16 KiB chunks as the proxy sees them from TLS; see inProcess) on the same bodies,
 * to separate scanning from proxying.
 *
 * Knobs for short A/B runs of the scrubber alone (docs/benchmarks.md, "Scrubbing"):
 *   BENCH_SCRUB_ALONE=1        skip the proxy part
 *   BENCH_SCRUB_PROXY_ROUNDS=3 downloads per mode through the proxy (modes alternated)
 *   BENCH_SCRUB_MB=100         MiB per in-process run
 *   BENCH_SCRUB_CHUNK=16384    bytes per write
 *   BENCH_SCRUB_ROUNDS=1       in-process runs per body (alternated with the base, if any)
 *   BENCH_SCRUB_COLD=0         skip the first pass of each mode and body (reported apart as "cold";
 *                              without it the first round pays for the JIT warm-up)
 *   BENCH_SCRUB_BASE=/dir      a checkout of another version (its src/scrub is imported): each
 *                              round runs it and this tree back to back, same process, same bodies
 *   BENCH_SCRUB_PROXY_BASE=/dir a built checkout of another version (its dist/ and test helpers):
 *                              its three turrets run beside this tree's and the downloads of all six
 *                              alternate, so both versions' ratios come from the same run
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as patternsHere from '../src/scrub/patterns.js';
import * as scrubberHere from '../src/scrub/scrubber.js';
import { startTurret, type TurretProc } from '../test/helpers/turret.js';
import { LOOPBACK, type RuleFile } from '../test/helpers/rules.js';
import { startUpstream } from '../test/helpers/upstream.js';
import { curlThrough, peakRssMb } from './through-turret.js';
import { YOUNG_GENERATION_FLAG } from '../src/cli/heap.js';

const TOTAL = 100 * 1024 * 1024;
const ALONE_TOTAL = Number(process.env.BENCH_SCRUB_MB ?? 100) * 1024 * 1024;
const CHUNK = Number(process.env.BENCH_SCRUB_CHUNK ?? 16384);
const ROUNDS = Number(process.env.BENCH_SCRUB_ROUNDS ?? 1);
const PROXY_ROUNDS = Number(process.env.BENCH_SCRUB_PROXY_ROUNDS ?? 3);

type ScrubberModule = Pick<typeof scrubberHere, 'compileScrubber'>;
type PatternsModule = Pick<typeof patternsHere, 'BUILTIN_PATTERNS' | 'compilePatterns'>;

export function jsonBlock(): Buffer {
  const items: string[] = [];
  let size = 0;
  for (let i = 0; size < 1 << 20; i++) {
    const o = {
      id: i,
      login: `user-${i}`,
      url: `https://api.github.com/repos/org/repo-${i}/issues/${i}`,
      sha: randomBytes(20).toString('hex'),
      created_at: new Date(i * 1e6).toISOString(),
      body: 'Token refresh failed; see the docs for the key rotation schedule and password policy.',
      labels: ['bug', 'p2'],
      state: 'open',
    };
    const t = JSON.stringify(o, null, 2);
    items.push(t);
    size += t.length + 2;
  }
  return Buffer.from(`${items.join(',\n')},\n`);
}

function rules(port: number, scanned: boolean): RuleFile {
  return {
    agents: ['bench'],
    secrets: [{ name: 'bench-token', from: { env: 'BENCH_TOKEN' }, hosts: ['big.turret.test:*'] }],
    rules: [{ name: 'big', methods: ['read'], hosts: [`big.turret.test:${port}`], unsafe_addresses: LOOPBACK }],
    ...(scanned ? {} : { scrub: { content_types: ['text/plain'] } }),
    local: ['big.turret.test'],
  };
}

/** utime + stime of the turret process, seconds (/proc/PID/stat fields 14 and 15, in ticks). */
/** utime + stime of the turret process, or of its main thread (the event loop) alone. */
function cpuSeconds(t: TurretProc, mainThread = false): number {
  const f =
    readFileSync(mainThread ? `/proc/${t.proc.pid}/task/${t.proc.pid}/stat` : `/proc/${t.proc.pid}/stat`, 'utf8')
      .split(') ')[1]
      ?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? (s[(s.length - 1) / 2] ?? NaN) : ((s[s.length / 2 - 1] ?? 0) + (s[s.length / 2] ?? 0)) / 2;
}

async function download(t: TurretProc, token: string, url: string): Promise<number> {
  const { code, values } = await curlThrough(t, token, '%{size_download} %{speed_download}', [url]);
  const [size, speed] = values;
  if (code !== 0 || size !== TOTAL) throw new Error(`curl exited ${code}, ${size} bytes`);
  return (speed ?? 0) / 1e6;
}

/**
 * The scrubber alone: default set + one known secret, `body` repeated to ALONE_TOTAL bytes in
 * CHUNK-byte pieces. `engine`: synchronous writes to the incremental engine (every chunk scanned
 * on its own: the worst case). `stream`: a pipeline source → scrub stream → a sink that completes
 * each write on the next turn of the event loop, as a socket does, so backpressure (and with it
 * the stream's `_writev` coalescing) happens as it does in the proxy.
 */
async function inProcess(body: Buffer, mods: { scrubber: ScrubberModule; patterns: PatternsModule }, mode: 'engine' | 'stream'): Promise<{ wall: number; cpu: number }> {
  const s = mods.scrubber.compileScrubber({
    secrets: [{ name: 'b', value: `fake_${randomBytes(16).toString('hex')}`, replacement: 'H' }],
    patterns: mods.patterns.compilePatterns(mods.patterns.BUILTIN_PATTERNS),
  });
  function* chunks(): Generator<Buffer> {
    for (let sent = 0; sent < ALONE_TOTAL;) {
      const off = sent % body.length;
      const n = Math.min(CHUNK, ALONE_TOTAL - sent, body.length - off);
      yield body.subarray(off, off + n);
      sent += n;
    }
  }
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  if (mode === 'engine') {
    const inc = s.createIncremental();
    for (const c of chunks()) inc.write(c);
    inc.end();
  } else {
    const sink = new Writable({ write: (_c, _e, cb) => setImmediate(cb) });
    await pipeline(Readable.from(chunks()), s.createStream(), sink);
  }
  const c = process.cpuUsage(c0);
  const mb = ALONE_TOTAL / 1e6;
  return { wall: mb / ((performance.now() - t0) / 1000), cpu: mb / ((c.user + c.system) / 1e6) };
}

async function alone(bodies: { json: Buffer; binary: Buffer }, out: Record<string, number>): Promise<void> {
  const here = { scrubber: scrubberHere, patterns: patternsHere };
  const baseDir = process.env.BENCH_SCRUB_BASE;
  const base = baseDir
    ? {
        scrubber: (await import(pathToFileURL(path.join(baseDir, 'src/scrub/scrubber.ts')).href)) as ScrubberModule,
        patterns: (await import(pathToFileURL(path.join(baseDir, 'src/scrub/patterns.ts')).href)) as PatternsModule,
      }
    : undefined;
  // The first pass of each mode and body in a fresh process is reported on its own ("cold"): the
  // first ~100 MB a process scans run at a third to a half of the steady speed (the JIT warming
  // up, docs/benchmarks.md "Fifth round"), and the rounds below used to give all of it to whichever
  // mode ran first (stream: 275 vs engine 430 MB per CPU s, both ~500-700 warm; "Sixth round").
  const subjects = base
    ? ([
        ['base ', base],
        ['', here],
      ] as const)
    : ([['', here]] as const);
  if (process.env.BENCH_SCRUB_COLD !== '0') {
    for (const [who, mods] of subjects) {
      for (const kind of ['json', 'binary'] as const) {
        for (const mode of ['stream', 'engine'] as const) {
          const m = await inProcess(bodies[kind], mods, mode);
          out[`cold ${who}scrubber alone (${mode}), ${kind}: MB per CPU s`] = m.cpu;
        }
      }
    }
  }
  for (let r = 1; r <= ROUNDS; r++) {
    for (const kind of ['json', 'binary'] as const) {
      for (const mode of ['stream', 'engine'] as const) {
        for (const [who, mods] of subjects) {
          const m = await inProcess(bodies[kind], mods, mode);
          out[`round ${r} ${who}scrubber alone (${mode}), ${kind}: MB/s`] = m.wall;
          out[`round ${r} ${who}scrubber alone (${mode}), ${kind}: MB per CPU s`] = m.cpu;
        }
      }
    }
  }
}

export async function benchScrub(): Promise<Record<string, number>> {
  const bodies = { json: jsonBlock(), binary: randomBytes(1 << 20) };
  if (process.env.BENCH_SCRUB_ALONE === '1') {
    const o: Record<string, number> = {};
    await alone(bodies, o);
    return o;
  }
  const up = await startUpstream({
    handler: (req, res) => {
      const kind = req.url?.includes('binary') ? 'binary' : 'json';
      const block = bodies[kind];
      res.writeHead(200, { 'content-type': kind === 'json' ? 'application/json' : 'application/octet-stream', 'content-length': TOTAL });
      let sent = 0;
      const pump = (): void => {
        while (sent < TOTAL) {
          const n = Math.min(65536, TOTAL - sent, block.length - (sent % block.length));
          const chunk = block.subarray(sent % block.length, (sent % block.length) + n);
          sent += n;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    },
  });
  const out: Record<string, number> = {};
  const env = { BENCH_TOKEN: `fake_${randomBytes(16).toString('hex')}` };
  const base = process.env.BENCH_SCRUB_PROXY_BASE;
  const kinds = [
    ['unscrubbed', false, 'json'],
    ['json', true, 'json'],
    ['binary', true, 'binary'],
  ] as const;
  const trees: Array<[string, typeof startTurret]> = [['', startTurret]];
  if (base) trees.unshift(['base ', ((await import(pathToFileURL(path.join(base, 'test/helpers/turret.ts')).href)) as { startTurret: typeof startTurret }).startTurret]);
  const modes = trees.flatMap(([who, start]) => kinds.map(([mode, scanned, kind]) => ({ mode: `${who}${mode}`, scanned, kind, start })));
  // One turret per mode, all running, downloads alternated (each round starts with another mode)
  // so that every mode sees the same machine load; the ratio is the median of per-round ratios.
  const turrets: { t: TurretProc; token: string; url: string }[] = [];
  try {
    for (const { scanned, kind, start } of modes) {
      const t = await start({ rules: { 'bench.yaml': rules(up.port, scanned) }, env, args: ['--admin', 'off'], node: [YOUNG_GENERATION_FLAG] });
      const e = await t.cli(['env', '--agent', 'bench']);
      const token = /HTTPS_PROXY='http:\/\/bench:([^@]+)@/.exec(e.stdout)?.[1] ?? '';
      const url = `https://big.turret.test:${up.port}/${kind}`;
      turrets.push({ t, token, url });
      await download(t, token, url); // warm-up: leaf, pools, JIT
    }
    const speed: number[][] = modes.map(() => []);
    const perCpu: number[][] = modes.map(() => []);
    const perMainCpu: number[][] = modes.map(() => []);
    for (let r = 0; r < PROXY_ROUNDS; r++) {
      for (let k = 0; k < modes.length; k++) {
        const i = (r + k) % modes.length;
        const x = turrets[i];
        if (!x) continue;
        const c0 = cpuSeconds(x.t);
        const m0 = cpuSeconds(x.t, true);
        speed[i]?.push(await download(x.t, x.token, x.url));
        perCpu[i]?.push(TOTAL / 1e6 / (cpuSeconds(x.t) - c0));
        perMainCpu[i]?.push(TOTAL / 1e6 / (cpuSeconds(x.t, true) - m0));
      }
    }
    modes.forEach(({ mode }, i) => {
      out[`proxy ${mode}: MB/s (median of ${PROXY_ROUNDS})`] = median(speed[i] ?? []);
      out[`proxy ${mode}: MB/s min`] = Math.min(...(speed[i] ?? []));
      out[`proxy ${mode}: MB/s max`] = Math.max(...(speed[i] ?? []));
      out[`proxy ${mode}: MB per proxy CPU s (median)`] = median(perCpu[i] ?? []);
      out[`proxy ${mode}: MB per proxy main-thread CPU s (median)`] = median(perMainCpu[i] ?? []);
      const x = turrets[i];
      if (x) out[`proxy ${mode}: peak RSS MB`] = peakRssMb(x.t);
    });
    for (let b = 0; b < modes.length; b += kinds.length) {
      const who = modes[b]?.mode.startsWith('base ') ? 'base ' : '';
      const ratios = (speed[b + 1] ?? []).map((v, r) => v / (speed[b]?.[r] ?? Infinity));
      out[`${who}ratio json scrubbed / unscrubbed (median of per-round ratios)`] = median(ratios);
      out[`${who}ratio json scrubbed / unscrubbed, min`] = Math.min(...ratios);
      out[`${who}ratio json scrubbed / unscrubbed, max`] = Math.max(...ratios);
    }
  } finally {
    for (const x of turrets) await x.t.stop();
    await up.close();
  }
  await alone(bodies, out);
  return out;
}
