/**
 * Shared state through a real redis-server on loopback and several real Turret processes, each
 * with its own copy of the key directory (as on separate machines: nothing travels through the
 * revocation file, only through Redis):
 *
 * - a rule limit and an agent limit hold across replicas, exactly (one atomic script per take),
 * - a revocation made on one replica's machine reaches the others by pub/sub (each logs it) and
 *   they refuse the handle; a restarted replica reads it from the durable set,
 * - Redis stopped and started again mid-traffic: development serves from local state with a
 *   warning, production answers 503 state_unavailable and /readyz is not ready; both reconnect
 *   by themselves, and what Redis lost (no persistence) is written back by the replicas.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { curl, type CurlResult } from '../helpers/curl.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { agentToken, makeDirs, runCli, startTurret, waitForAudit, waitForLog, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const SECRET = `fake_${randomBytes(18).toString('hex')}`;
const ENV = { T_SECRET: SECRET };

const rules = (url: string): RuleFile => ({
  agents: ['a', 'b'],
  secrets: [{ name: 'api', from: { env: 'T_SECRET' }, hosts: ['echo.turret.test:*'], env: 'API_TOKEN' }],
  rules: [
    { name: 'echo', methods: ['read'], hosts: ['echo.turret.test:*'], unsafe_addresses: LOOPBACK },
    { name: 'limited', methods: ['read'], hosts: ['limited.turret.test:*'], unsafe_addresses: LOOPBACK, rate_limit: { requests: 3, per: '1h' } },
  ],
  limits: [{ agents: ['b'], requests: 2, per: '1h' }],
  settings: { shared_state: { url } },
  local: ['echo.turret.test', 'limited.turret.test'],
});

describe('shared state in Redis across replicas', () => {
  let redis: RedisServer;
  let plain: Upstream;
  let secure: Upstream;
  const procs: TurretProc[] = [];
  const dirs: string[] = [];
  let seed: { dir: string; caDir: string };
  const tokens: Record<string, string> = {};
  const outputs: string[] = [];

  /** A replica with its own copy of the key directory (its own revocation file). */
  const replica = async (o: { production?: boolean; caDir?: string } = {}): Promise<TurretProc> => {
    let caDir = o.caDir;
    if (!caDir) {
      const d = makeDirs({});
      dirs.push(d.dir);
      caDir = path.join(d.dir, 'ca');
      cpSync(seed.caDir, caDir, { recursive: true });
    }
    const t = await startTurret({
      rules: { 'main.yaml': rules(redis.url) },
      env: ENV,
      caDir,
      args: ['--no-watch', ...(o.production ? ['--production'] : [])],
      startTimeoutMs: 60_000,
    });
    procs.push(t);
    await waitForLog(t, /"msg":"shared state connected"/, 0, 30_000);
    return t;
  };
  const get = async (t: TurretProc, url: string, agent = 'a', extra: string[] = []): Promise<CurlResult> => {
    const r = await curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `${agent}:${tokens[agent]}`, '--cacert', path.join(t.caDir, 'ca.crt'), ...extra, url]);
    outputs.push(r.raw, r.stderr);
    return r;
  };

  before(async () => {
    redis = await startRedis();
    plain = await startUpstream({ tls: false });
    secure = await startUpstream();
    // One key directory, created once, then copied to each replica (like a Kubernetes Secret).
    seed = makeDirs({ 'main.yaml': rules(redis.url) });
    dirs.push(seed.dir);
    const init = await runCli(['ca', 'init', '--dir', seed.caDir]);
    assert.equal(init.code, 0, init.stderr);
    const first = await replica({ caDir: seed.caDir });
    tokens.a = await agentToken(first, 'a');
    tokens.b = await agentToken(first, 'b');
  });

  after(async () => {
    for (const p of procs) await p.stop();
    await redis?.stop();
    await plain?.close();
    await secure?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a rule limit and an agent limit hold across three replicas', async () => {
    const [r1, r2, r3] = [procs[0]!, await replica(), await replica()];
    const statuses: number[] = [];
    for (const t of [r1, r2, r3, r1, r2]) statuses.push((await get(t, `http://limited.turret.test:${plain.port}/x`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    const denied = await get(r3, `http://limited.turret.test:${plain.port}/x`);
    assert.equal(denied.headers['x-turret-error'], 'rate_limited');
    assert.ok(Number(denied.headers['retry-after']) >= 1);
    // The agent limit of b (2 per hour) counts b's requests on every replica together.
    const bs: number[] = [];
    for (const t of [r2, r3, r1]) bs.push((await get(t, `http://echo.turret.test:${plain.port}/b`, 'b')).status);
    assert.deepEqual(bs, [200, 200, 429]);
    // a is not slowed by b's limit.
    assert.equal((await get(r1, `http://echo.turret.test:${plain.port}/a`)).status, 200);
  });

  it('a revocation on one replica reaches the others by pub/sub; a restarted replica keeps it', async () => {
    const issuer = procs[0]!;
    const [r2, r3] = [await replica(), await replica()];
    const issued = await issuer.cli(['handle', 'issue', '--agent', 'a', '--secret', 'api', '--ttl', '1h'], ENV);
    assert.equal(issued.code, 0, issued.stderr);
    const handle = issued.stdout.trim();
    const url = `https://echo.turret.test:${secure.port}/h`;
    const ok = await get(r2, url, 'a', ['-H', `authorization: Bearer ${handle}`]);
    assert.equal(ok.status, 200, ok.raw);
    // The upstream got the real value (the response is scrubbed back to the handle on its way out).
    assert.equal(secure.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`);
    // The record is shared: another machine's `handle list` (r3's key directory) shows it.
    const listed = await r3.cli(['handle', 'list'], ENV);
    const id = /^([0-9a-f]{32})\ta\tapi\t.*\tcli$/m.exec(listed.stdout)?.[1];
    assert.ok(id, listed.stdout);

    const marks = [r2.stderr().length, r3.stderr().length];
    const rev = await issuer.cli(['handle', 'revoke', id], ENV);
    assert.equal(rev.code, 0, rev.stderr);
    for (const [i, t] of [r2, r3].entries()) {
      await waitForLog(t, new RegExp(`"msg":"handle revoked \\(shared state\\)","handle_id":"${id}"`), marks[i], 30_000);
      const r = await get(t, url, 'a', ['-H', `authorization: Bearer ${handle}`]);
      assert.equal(r.status, 403, r.raw);
      assert.equal(r.headers['x-turret-error'], 'handle_revoked');
      // Only Redis carried it: this replica's own revocation file never heard of the id.
      const file = path.join(t.caDir, 'revocations.txt');
      assert.ok(!existsSync(file) || !readFileSync(file, 'utf8').includes(id));
    }
    // A restart of r3 (same key directory, nothing in its file) reads the durable set.
    await r3.stop();
    const again = await replica({ caDir: r3.caDir });
    const r = await get(again, url, 'a', ['-H', `authorization: Bearer ${handle}`]);
    assert.equal(r.status, 403, r.raw);
    assert.equal(r.headers['x-turret-error'], 'handle_revoked');
    for (const o of [...outputs, ...procs.map((p) => p.stdout() + p.stderr() + p.auditText())]) assert.ok(!o.includes(SECRET), 'the secret only reached the upstream');
    assert.ok(!(await redis.cli(['--scan'])).includes(SECRET) && !(await redis.cli(['HGETALL', 'turret:issued'])).includes(SECRET), 'no secret value in Redis');
  });

  it('Redis stopped and restarted: development falls back with a warning, production refuses with 503; both reconnect', async () => {
    const dev = procs[0]!;
    const prod = await replica({ production: true });
    const url = `http://echo.turret.test:${plain.port}/o`;
    assert.equal((await get(prod, url)).status, 200);
    const revokedBefore = (await redis.cli(['ZRANGE', 'turret:revoked', '0', '-1'])).trim().split('\n').filter(Boolean);
    assert.ok(revokedBefore.length >= 1, 'the earlier revocation is in Redis');
    const marks = [dev.stderr().length, prod.stderr().length];
    await redis.stop();
    await waitForLog(dev, /"level":"warn","msg":"shared state unreachable; serving limits and revocations from local state/, marks[0], 30_000);
    await waitForLog(prod, /"level":"error","msg":"shared state unreachable; refusing traffic/, marks[1], 30_000);
    const d = await get(dev, url);
    assert.equal(d.status, 200, d.raw);
    // The CLI cannot reach Redis: it says so (exit 1) and still writes this machine's revocation file.
    const lone = randomBytes(16).toString('hex');
    const cliRev = await dev.cli(['handle', 'revoke', lone], ENV);
    assert.equal(cliRev.code, 1, cliRev.stderr);
    assert.match(cliRev.stderr, /shared state .* cannot be reached/);
    assert.ok(readFileSync(path.join(dev.caDir, 'revocations.txt'), 'utf8').includes(lone));
    const p = await get(prod, url);
    assert.equal(p.status, 503, p.raw);
    assert.equal(p.headers['x-turret-error'], 'state_unavailable');
    assert.ok(await waitForAudit(prod, (x) => x.code === 'state_unavailable'), 'the refusal has its audit record');
    const ready = await adminReady(prod);
    assert.equal(ready.status, 503);
    assert.equal(ready.body.checks.shared_state, false);
    assert.equal(ready.body.shared_state.mode, 'refusing');
    assert.equal((await adminReady(dev)).body.shared_state.mode, 'local-fallback');

    // Back, empty (no persistence): the replicas reconnect on their own and write back what they knew.
    await redis.start();
    await waitForLog(dev, /"msg":"shared state reconnected"/, marks[0], 30_000);
    await waitForLog(prod, /"msg":"shared state reconnected"/, marks[1], 30_000);
    assert.equal((await get(prod, url)).status, 200);
    assert.equal((await adminReady(prod)).status, 200);
    const revokedAfter = (await redis.cli(['ZRANGE', 'turret:revoked', '0', '-1'])).trim().split('\n').filter(Boolean);
    assert.deepEqual(revokedAfter.sort(), revokedBefore.sort());
  });

  it('Redis unreachable at start: production starts refusing (503, not ready), development serves; both connect once it is there', async () => {
    const late = await startRedis();
    await late.stop();
    const start = async (production: boolean): Promise<TurretProc> => {
      const d = makeDirs({});
      dirs.push(d.dir);
      const caDir = path.join(d.dir, 'ca');
      cpSync(seed.caDir, caDir, { recursive: true });
      const t = await startTurret({
        rules: { 'main.yaml': rules(late.url) },
        env: ENV,
        caDir,
        args: ['--no-watch', ...(production ? ['--production'] : [])],
        startTimeoutMs: 60_000,
      });
      procs.push(t);
      return t;
    };
    const [prod, dev] = [await start(true), await start(false)];
    assert.match(prod.stderr(), /"level":"error","msg":"shared state unreachable at start; refusing traffic/);
    assert.match(dev.stderr(), /"level":"warn","msg":"shared state unreachable at start; serving limits and revocations from local state/);
    const url = `http://echo.turret.test:${plain.port}/s`;
    const p = await get(prod, url);
    assert.equal(p.status, 503, p.raw);
    assert.equal(p.headers['x-turret-error'], 'state_unavailable');
    assert.equal((await adminReady(prod)).status, 503);
    assert.equal((await get(dev, url)).status, 200);
    await late.start();
    try {
      await waitForLog(prod, /"msg":"shared state connected"/, 0, 30_000);
      await waitForLog(dev, /"msg":"shared state connected"/, 0, 30_000);
      assert.equal((await get(prod, url)).status, 200);
      assert.equal((await adminReady(prod)).status, 200);
    } finally {
      await late.stop();
    }
  });
});

async function adminReady(t: TurretProc): Promise<{ status: number; body: { checks: Record<string, boolean>; shared_state: { mode: string } } }> {
  const port = Number(/"admin":"127\.0\.0\.1:(\d+)"/.exec(t.stderr())?.[1]);
  const r = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: r.status, body: (await r.json()) as { checks: Record<string, boolean>; shared_state: { mode: string } } };
}
