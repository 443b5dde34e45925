/**
 * What a large scrubbed download does to everyone else on the same turret: small HTTPS requests
 * (intercepted, scrubbed, one at a time on one keep-alive tunnel) timed while the turret is idle
 * and while curl downloads a 100 MB scrubbed JSON body through it (src/scrub/offload.ts moves
 * that scan off the event loop). Reports p50 / p99 / max of the small requests' latency in each
 * phase and the download's throughput. The big body comes from an upstream in a child process,
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
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startTurret, type TurretProc } from '../test/helpers/turret.js';
import { startUpstream } from '../test/helpers/upstream.js';
import { basic } from '../test/helpers/ops.js';
import { httpsClient, type Client } from './peers-load.js';
import { jsonBlock } from './scrub.js';
import { LOOPBACK, type RuleFile } from '../test/helpers/rules.js';
import { curlThrough } from './through-turret.js';

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
  const subjects: Array<{ who: string; t: TurretProc; token: string; client: Client; idle: number[]; during: number[]; speed: number[] }> = [];
  const out: Record<string, number> = {};
  const limit = RATE ? ['--limit-rate', RATE] : [];
  try {
    for (const [who, start] of trees) {
      const t = await start({ rules: { 'bench.yaml': rules(up.port, bigPort) }, env, args: ['--admin', 'off'] });
      const e = await t.cli(['env', '--agent', 'bench']);
      const token = /HTTPS_PROXY='http:\/\/bench:([^@]+)@/.exec(e.stdout)?.[1] ?? '';
      const ca = readFileSync(path.join(t.caDir, 'ca.crt'), 'utf8');
      const client = httpsClient({ proxyPort: t.port, proxyAuth: basic('bench', token), namedHosts: true, ca }, up.port, 'big.turret.test', 1);
      subjects.push({ who, t, token, client, idle: [], during: [], speed: [] });
      for (let i = 0; i < 50; i++) await timed(client); // warm-up: leaf, tunnel, JIT
      await curlThrough(t, token, '%{size_download}', [...limit, `https://big.turret.test:${bigPort}/big`]);
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < subjects.length; k++) {
        const s = subjects[(r + k) % subjects.length];
        if (!s) continue;
        for (let i = 0; i < IDLE; i++) s.idle.push(await timed(s.client));
        let done = false;
        const dl = curlThrough(s.t, s.token, '%{size_download} %{speed_download}', [...limit, `https://big.turret.test:${bigPort}/big`]).finally(() => (done = true));
        for (let i = 0; i < MAX_DURING && !done; i++) s.during.push(await timed(s.client));
        const { code, values } = await dl;
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
