/**
 * Lifecycle of a real turret process: the structured start-up summary, SIGTERM draining (no new
 * connections, a running request finishes, /readyz turns 503 meanwhile) and the drain deadline
 * (a request that does not finish in time is cut and the process still exits promptly).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { curl } from '../helpers/curl.js';
import { adminPort, agentToken, httpGet } from '../helpers/ops.js';
import { startTurret, until, waitForLog, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const RULES: RuleFile = {
  agents: ['agent-a'],
  secrets: [{ name: 'lifecycle-token', from: { env: 'TEST_LIFECYCLE_TOKEN' }, hosts: ['echo.turret.test:*'] }],
  rules: [{ name: 'echo', methods: ['read'], hosts: ['echo.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['echo.turret.test'],
};

function exited(t: TurretProc, maxMs: number): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    if (t.proc.exitCode !== null || t.proc.signalCode !== null) return resolve({ code: t.proc.exitCode, ms: 0 });
    const timer = setTimeout(() => reject(new Error(`turret still running after ${maxMs} ms:\n${t.stderr()}`)), maxMs);
    t.proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - started });
    });
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('lifecycle', () => {
  let up: Upstream;
  const procs: TurretProc[] = [];

  const start = async (drain: string): Promise<{ t: TurretProc; px: string[] }> => {
    const t = await startTurret({ rules: { 'l.yaml': RULES }, env: { TEST_LIFECYCLE_TOKEN: 'fake-lifecycle-value' }, args: ['--admin', '127.0.0.1:0', '--drain-timeout', drain] });
    procs.push(t);
    const token = await agentToken(t, 'agent-a');
    return { t, px: ['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `agent-a:${token}`, '--cacert', path.join(t.caDir, 'ca.crt')] };
  };

  before(async () => {
    up = await startUpstream({
      handler: (req, res) => {
        const ms = Number(/^\/sleep\/(\d+)$/.exec(req.url ?? '')?.[1] ?? 0);
        setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(`slept ${ms}`), ms).unref();
      },
    });
  });
  after(async () => {
    for (const t of procs) await t.stop();
    await up?.close();
  });

  it('logs a structured start-up summary: listeners, mode, rules, agents, secret names, limits', async () => {
    const { t } = await start('30s');
    const line = t
      .stderr()
      .split('\n')
      .find((l) => l.includes('"msg":"turret started"'));
    assert.ok(line);
    const s = JSON.parse(line) as Record<string, unknown>;
    assert.match(String(s.listen), /^127\.0\.0\.1:\d+$/);
    assert.match(String(s.admin), /^127\.0\.0\.1:\d+$/);
    assert.equal(s.mode, 'development');
    assert.equal(s.drain_timeout_ms, 30_000);
    assert.deepEqual(s.agents, ['agent-a']);
    assert.deepEqual(s.secrets, ['lifecycle-token']);
    assert.equal((s.rules as string[]).length, 1);
    assert.equal((s.limits as Record<string, number>).maxTunnelsPerAgent, 64);
    assert.ok(!line.includes('fake-lifecycle-value'), 'names, never values');
  });

  it('SIGTERM drains: new connections are refused, /readyz is 503, the running request completes, exit 0', async () => {
    const { t, px } = await start('10s');
    const admin = adminPort(t);
    const running = curl([...px, `https://echo.turret.test:${up.port}/sleep/1500`]);
    await until(() => up.received.some((r) => r.url === '/sleep/1500'), 'the request to reach the upstream');
    const exit = exited(t, 10_000);
    const mark = t.stderr().length;
    t.proc.kill('SIGTERM');
    // Logged in the same tick as the listener closes.
    await waitForLog(t, /"msg":"stopping: draining connections"/, mark);
    assert.equal(await refused(t.port), true, 'the proxy port no longer accepts');
    const ready = await httpGet(admin, '/readyz');
    assert.equal(ready.status, 503);
    assert.equal(JSON.parse(ready.body).checks.draining, true);
    const r = await running;
    assert.equal(r.status, 200, r.raw + r.stderr);
    assert.equal(r.body, 'slept 1500');
    const e = await exit;
    assert.equal(e.code, 0, t.stderr());
    assert.match(t.stderr(), /"msg":"stopped","clean":true,"forced_connections":0/);
  });

  it('a SIGTERM sent the moment "turret started" is logged still drains and exits 0', async () => {
    // The signal goes out in the same turn the start-up line is read (startTurret resolves from
    // the stderr data event). Three starts: with the handlers installed after that line, about half
    // of such signals killed the process outright (no drain, no audit close).
    const runs = await Promise.all(
      [0, 1, 2].map(async () => {
        const t = await startTurret({ rules: { 'l.yaml': RULES }, env: { TEST_LIFECYCLE_TOKEN: 'fake-lifecycle-value' } });
        procs.push(t);
        const exit = exited(t, 10_000);
        t.proc.kill('SIGTERM');
        return { t, e: await exit };
      }),
    );
    for (const { t, e } of runs) {
      assert.equal(e.code, 0, `exit ${e.code} (signal ${t.proc.signalCode}):\n${t.stderr()}`);
      assert.match(t.stderr(), /"msg":"stopped","clean":true/);
    }
  });

  it('cuts what is still running at the drain deadline and exits promptly', async () => {
    const { t, px } = await start('1s');
    const running = curl([...px, `https://echo.turret.test:${up.port}/sleep/8000`]);
    await until(() => up.received.some((r) => r.url === '/sleep/8000'), 'the request to reach the upstream');
    const exit = exited(t, 6_000);
    t.proc.kill('SIGTERM');
    const e = await exit;
    assert.equal(e.code, 0);
    assert.ok(e.ms < 3_000, `exited ${e.ms} ms after SIGTERM with a 1 s drain deadline`);
    assert.match(t.stderr(), /"msg":"stopped","clean":false,"forced_connections":[1-9]/);
    const r = await running;
    assert.notEqual(r.status, 200, 'the request was cut, not completed');
  });
});
