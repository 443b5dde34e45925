/**
 * `npm run bench -- state` (issue #16): what shared state and `--workers` cost and give.
 *
 *   1. Throughput of one Turret process vs `turret start --workers 2` (plain HTTP GET of a small
 *      body through the proxy, wrk with 16 connections; the upstream runs in its own process).
 *   2. The Redis round trip per request: the same single process with a rule rate limit that
 *      never runs out, its buckets in memory (no shared_state) vs in Redis (one EVALSHA per
 *      request), through the proxy; and the take alone, in this process: LocalState vs
 *      RedisState, one at a time (latency) and 16 in flight (throughput).
 *
 * Redis is a real redis-server on loopback (test/helpers/redis.ts). Every run is bounded by
 * wrk's duration or a count; each proxy number is the median of three runs after a warm-up.
 */
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createLogger } from '../src/core/log.js';
import type { LimitCheck } from '../src/policy/ratelimit.js';
import { LocalState } from '../src/state/local.js';
import { RedisState } from '../src/state/redis.js';
import { startRedis, type RedisServer } from '../test/helpers/redis.js';
import { LOOPBACK, type RuleFile } from '../test/helpers/rules.js';
import { startTurret } from '../test/helpers/turret.js';
import { startUpstreams, type Ports } from './peers.js';
import { runWrk } from './peers-procs.js';
import { YOUNG_GENERATION_FLAG } from '../src/cli/heap.js';

const HOST = 'echo.turret.test';
const RUNS = 3;
const SECONDS = 4;

function rules(limit: boolean, redisUrl: string | null): RuleFile {
  return {
    agents: ['bench'],
    rules: [{ name: 'bench', methods: ['read'], hosts: [`${HOST}:*`], unsafe_addresses: LOOPBACK, ...(limit ? { rate_limit: { requests: 1000000, per: '1s' } } : {}) }],
    settings: redisUrl ? { shared_state: { url: redisUrl } } : {},
    local: [HOST],
    testCa: false,
  };
}

async function throughput(ports: Ports, o: { limit: boolean; redis: RedisServer | null; workers: number }): Promise<{ rps: number; p50: number }> {
  const t = await startTurret({
    node: [YOUNG_GENERATION_FLAG], // as the launchers start it (src/cli/heap.ts)
    rules: { 'bench.yaml': rules(o.limit, o.redis?.url ?? null) },
    args: ['--admin', 'off', '--no-watch', ...(o.workers > 1 ? ['--workers', String(o.workers)] : [])],
    startTimeoutMs: 120_000,
  });
  try {
    const env = await t.cli(['env', '--agent', 'bench']);
    const token = /HTTPS_PROXY='http:\/\/bench:([^@]+)@/.exec(env.stdout)?.[1];
    if (!token) throw new Error(`no agent credential: ${env.stderr.slice(0, 200)}`);
    const w = { url: `http://${HOST}:${ports.http}/small`, proxyPort: t.port, proxyAuth: `Basic ${Buffer.from(`bench:${token}`).toString('base64')}`, connections: 16 };
    runWrk({ ...w, seconds: 1 }); // warm-up: JIT, pools, every worker accepting
    const runs = Array.from({ length: RUNS }, () => runWrk({ ...w, seconds: SECONDS })!).sort((a, b) => a.rps - b.rps);
    const mid = runs[Math.floor(RUNS / 2)]!;
    return { rps: mid.rps, p50: mid.p50 };
  } finally {
    await t.stop();
    rmSync(t.dir, { recursive: true, force: true });
  }
}

const CHECKS: LimitCheck[] = [
  { key: 'agent\0limits[0]\0bench', spec: { requests: 1_000_000, perMs: 1000, burst: 1_000_000, source: '' }, label: 'agent' },
  { key: 'rule\0bench\0bench', spec: { requests: 1_000_000, perMs: 1000, burst: 1_000_000, source: '' }, label: 'rule' },
];

async function takes(state: { take(c: readonly LimitCheck[]): Promise<unknown> }, n: number, inFlight: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) {
        next++;
        await state.take(CHECKS);
      }
    }),
  );
  return Number(process.hrtime.bigint() - t0) / 1e3 / n; // µs per take
}

export async function benchState(): Promise<Record<string, number>> {
  const { ports, stop } = await startUpstreams();
  const redis = await startRedis();
  const out: Record<string, number> = { 'load average (1 min) at start': loadavg()[0] ?? NaN };
  try {
    const one = await throughput(ports, { limit: false, redis: null, workers: 1 });
    const two = await throughput(ports, { limit: false, redis, workers: 2 });
    out['1 process: requests/s'] = one.rps;
    out['--workers 2 (shared_state): requests/s'] = two.rps;
    out['--workers 2 / 1 process'] = two.rps / one.rps;
    out['1 process: p50 ms'] = one.p50;
    out['--workers 2: p50 ms'] = two.p50;

    const local = await throughput(ports, { limit: true, redis: null, workers: 1 });
    const shared = await throughput(ports, { limit: true, redis, workers: 1 });
    out['rate limit, local buckets: requests/s'] = local.rps;
    out['rate limit, Redis buckets: requests/s'] = shared.rps;
    out['Redis cost per request at saturation (µs)'] = (1 / shared.rps - 1 / local.rps) * 1e6;
    out['rate limit, local buckets: p50 ms'] = local.p50;
    out['rate limit, Redis buckets: p50 ms'] = shared.p50;

    const dir = `/tmp/turret-bench-state-${process.pid}`;
    const loc = new LocalState(dir);
    const rs = new RedisState({
      settings: { url: redis.url, caFile: null, username: null, password: null, keyPrefix: 'bench:', timeoutMs: 1000 },
      credentials: { password: null, ca: null },
      local: loc,
      production: true,
      log: createLogger({ level: 'error' }),
      server: true,
    });
    await rs.start(5000);
    await takes(rs, 2000, 1); // warm-up: script loaded (EVALSHA), connection hot
    out['take, LocalState, one at a time (µs)'] = await takes(loc, 20_000, 1);
    out['take, RedisState, one at a time (µs)'] = await takes(rs, 5_000, 1);
    out['take, RedisState, 16 in flight (µs per take)'] = await takes(rs, 20_000, 16);
    await rs.close();
  } finally {
    await redis.stop();
    stop();
  }
  return out;
}
