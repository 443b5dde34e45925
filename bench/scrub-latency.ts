/**
 * What a large scrubbed download does to everyone else on the same turret: small HTTPS requests
 * (intercepted, scrubbed, one at a time on one keep-alive tunnel) timed while the turret is idle
 * and while curl downloads a 100 MB scrubbed JSON body through it (docs/benchmarks.md "Scrubbing →
 * Eighth round": a scan worker measured with it, and reverted). Reports p50 / p99 / max of the small requests' latency in each
 * phase, the turret's event-loop delay in each phase (monitorEventLoopDelay in the turret, through
 * bench/eld-preload.mjs: what the turret itself did to its loop, apart from the client's and the
 * machine's share of the latency) and the download's throughput. The big body comes from an upstream in a child process,
 * so the small requests' client and upstream (this process) do not wait behind its pump.
 *
 *   BENCH_LAT_ROUNDS=3          idle + download phases per turret (turrets alternated)
 *   BENCH_LAT_IDLE=300          small requests in an idle phase
 *   BENCH_LAT_RATE=100M         curl --limit-rate for the download (same bytes per second through
 *                               every turret, so the comparison is at the same load); default none
 *   BENCH_SCRUB_PROXY_BASE=/dir a built checkout of another version: its turret runs beside this
 *                               tree's and the phases alternate between the two
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startTurret, type TurretProc } from '../test/helpers/turret.js';
import { startUpstream } from '../test/helpers/upstream.js';
import { basic } from '../test/helpers/ops.js';
import { httpsClient, type Client } from './peers-load.js';
import { jsonBlock } from './scrub.js';
import { LOOPBACK, type RuleFile } from '../test/helpers/rules.js';
import { curlThrough } from './through-turret.js';
import { YOUNG_GENERATION_FLAG } from '../src/cli/heap.js';

const TOTAL = 100 * 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_LAT_ROUNDS ?? 3);
const IDLE = Number(process.env.BENCH_LAT_IDLE ?? 300);
/** Bound on the small requests of one download phase. */
const MAX_DURING = 100_000;
const RATE = process.env.BENCH_LAT_RATE;
const SMALL = Buffer.from(JSON.stringify({ ok: true, items: [1, 2, 3], note: 'a small API answer' }));

function q(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

interface Eld {
  seq: number;
  p50: number;
  p99: number;
  max: number;
}

/** The turret's event-loop delay since the last call (bench/eld-preload.mjs), polled for at most 5 s. */
async function eld(t: TurretProc, file: string, seq: number): Promise<Eld> {
  t.proc.kill('SIGUSR2');
  for (let i = 0; i < 1000; i++) {
    if (existsSync(file)) {
      const e = JSON.parse(readFileSync(file, 'utf8')) as Eld;
      if (e.seq === seq) return e;
    }
    await sleep(5);
  }
  throw new Error('no event-loop delay report from the turret');
}

async function timed(c: Client): Promise<number> {
  const t0 = process.hrtime.bigint();
  await c.get('/small');
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function rules(small: number, big: number): RuleFile {
  return {
    agents: ['bench'],
    secrets: [{ name: 'bench-token', from: { env: 'BENCH_TOKEN' }, hosts: ['big.turret.test:*'] }],
    rules: [{ name: 'up', methods: ['read'], hosts: [`big.turret.test:${small}`, `big.turret.test:${big}`], unsafe_addresses: LOOPBACK }],
    local: ['big.turret.test'],
  };
}

/** The child process: serves the 100 MB JSON body, prints its port. */
async function serveBig(): Promise<void> {
  const block = jsonBlock();
  const up = await startUpstream({
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': TOTAL });
      let sent = 0;
      const pump = (): void => {
        while (sent < TOTAL) {
          const at = sent % block.length;
          const n = Math.min(65536, TOTAL - sent, block.length - at);
          sent += n;
          if (!res.write(block.subarray(at, at + n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    },
  });
  process.stdout.write(`${up.port}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => void up.close().then(() => process.exit(0)));
}
if (process.argv[2] === '--serve-big') await serveBig();

export async function benchScrubLatency(): Promise<Record<string, number>> {
  const up = await startUpstream({
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': SMALL.length });
      res.end(SMALL);
    },
  });
  const child = spawn(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--serve-big'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [first] = (await once(child.stdout, 'data')) as [Buffer];
  const bigPort = Number(first.toString().trim());
  const env = { BENCH_TOKEN: `fake_${randomBytes(16).toString('hex')}` };
  const trees: Array<[string, typeof startTurret]> = [['', startTurret]];
  const base = process.env.BENCH_SCRUB_PROXY_BASE;
  if (base) trees.unshift(['base ', ((await import(pathToFileURL(path.join(base, 'test/helpers/turret.ts')).href)) as { startTurret: typeof startTurret }).startTurret]);
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-eld-'));
  const preload = new URL('./eld-preload.mjs', import.meta.url).pathname;
  type Subject = {
    who: string;
    t: TurretProc;
    token: string;
    client: Client;
    idle: number[];
    during: number[];
    speed: number[];
    file: string;
    seq: number;
    eld: Record<string, Eld[]>;
  };
  const subjects: Subject[] = [];
  const out: Record<string, number> = {};
  const limit = RATE ? ['--limit-rate', RATE] : [];
  try {
    for (const [who, start] of trees) {
      const file = path.join(dir, `eld-${subjects.length}.json`);
      const t = await start({
        rules: { 'bench.yaml': rules(up.port, bigPort) },
        env: { ...env, NODE_OPTIONS: `--import ${preload}`, BENCH_ELD_FILE: file },
        args: ['--admin', 'off'],
        node: [YOUNG_GENERATION_FLAG], // as the launchers start it (src/cli/heap.ts)
      });
      const e = await t.cli(['env', '--agent', 'bench']);
      const token = /HTTPS_PROXY='http:\/\/bench:([^@]+)@/.exec(e.stdout)?.[1] ?? '';
      const ca = readFileSync(path.join(t.caDir, 'ca.crt'), 'utf8');
      const client = httpsClient({ proxyPort: t.port, proxyAuth: basic('bench', token), namedHosts: true, ca }, up.port, 'big.turret.test', 1);
      subjects.push({ who, t, token, client, idle: [], during: [], speed: [], file, seq: 0, eld: { idle: [], 'during download': [] } });
      for (let i = 0; i < 50; i++) await timed(client); // warm-up: leaf, tunnel, JIT
      await curlThrough(t, token, '%{size_download}', [...limit, `https://big.turret.test:${bigPort}/big`]);
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < subjects.length; k++) {
        const s = subjects[(r + k) % subjects.length];
        if (!s) continue;
        await eld(s.t, s.file, ++s.seq);
        for (let i = 0; i < IDLE; i++) s.idle.push(await timed(s.client));
        s.eld.idle?.push(await eld(s.t, s.file, ++s.seq));
        let done = false;
        const dl = curlThrough(s.t, s.token, '%{size_download} %{speed_download}', [...limit, `https://big.turret.test:${bigPort}/big`]).finally(() => (done = true));
        for (let i = 0; i < MAX_DURING && !done; i++) s.during.push(await timed(s.client));
        const { code, values } = await dl;
        s.eld['during download']?.push(await eld(s.t, s.file, ++s.seq));
        if (code !== 0 || values[0] !== TOTAL) throw new Error(`curl exited ${code}, ${values[0]} bytes`);
        s.speed.push((values[1] ?? 0) / 1e6);
      }
    }
    for (const s of subjects) {
      for (const [phase, xs] of [
        ['idle', s.idle],
        ['during download', s.during],
      ] as const) {
        const sorted = [...xs].sort((a, b) => a - b);
        out[`${s.who}small request ${phase}: p50 ms`] = q(sorted, 0.5);
        out[`${s.who}small request ${phase}: p99 ms`] = q(sorted, 0.99);
        out[`${s.who}small request ${phase}: max ms`] = sorted[sorted.length - 1] ?? NaN;
        out[`${s.who}small request ${phase}: count`] = sorted.length;
        const e = s.eld[phase] ?? [];
        out[`${s.who}turret event-loop delay ${phase}: p50 ms (median of rounds)`] = q(
          e.map((x) => x.p50).sort((a, b) => a - b),
          0.5,
        );
        out[`${s.who}turret event-loop delay ${phase}: p99 ms (median of rounds)`] = q(
          e.map((x) => x.p99).sort((a, b) => a - b),
          0.5,
        );
        out[`${s.who}turret event-loop delay ${phase}: max ms`] = Math.max(...e.map((x) => x.max));
      }
      const sp = [...s.speed].sort((a, b) => a - b);
      out[`${s.who}download MB/s (median of ${ROUNDS})`] = q(sp, 0.5);
    }
  } finally {
    for (const s of subjects) {
      await s.client.close();
      await s.t.stop();
    }
    await up.close();
    child.stdin.end();
  }
  return out;
}
