/**
 * Fair upstream connections (issue #13): one agent's 200 hung requests to an origin do not delay
 * another agent's request to the same origin. Each agent has its own pool per origin
 * (upstream_connections_per_agent, here 4): agent A's requests hold A's 4 connections and the
 * other 196 queue behind them; agent B's request gets a connection of its own and completes
 * while every one of A's is still hung (event-ordered: A is released only afterwards).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startFaultUpstream, type FaultUpstream } from '../helpers/fault-upstream.js';
import { agentToken, basic } from '../helpers/ops.js';
import { readResponse } from '../helpers/raw-proxy.js';
import { startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const RULES: RuleFile = {
  agents: ['agent-a', 'agent-b'],
  rules: [{ name: 'up', methods: ['read'], schemes: ['http'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['up.turret.test'],
  testCa: false,
};

const HUNG = 200;
const PER_AGENT = 4;

describe('fair upstream connections', () => {
  let t: TurretProc;
  let up: FaultUpstream;
  const clients: net.Socket[] = [];

  before(async () => {
    up = await startFaultUpstream();
    // The queue-wait bound is out of the way here (its own test is below): A's 196 queued requests
    // must still be queued when its clients give up, whatever the machine's load.
    t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--limit', `upstream_connections_per_agent=${PER_AGENT}`, '--limit', 'upstream_queue_timeout=0'] });
  });
  after(async () => {
    for (const s of clients) s.destroy();
    await t?.stop();
    await up?.close();
  });

  it(`agent B's request completes while agent A's ${HUNG} requests to the same origin hang`, async () => {
    const authA = basic('agent-a', await agentToken(t, 'agent-a'));
    const authB = basic('agent-b', await agentToken(t, 'agent-b'));
    const origin = `http://up.turret.test:${up.port}`;
    for (let i = 0; i < HUNG; i++) {
      const s = net.connect(t.port, '127.0.0.1');
      s.on('error', () => {});
      s.write(`GET ${origin}/hang/a-${i} HTTP/1.1\r\nHost: up.turret.test:${up.port}\r\nProxy-Authorization: ${authA}\r\n\r\n`);
      clients.push(s);
    }
    const hung = (): number => up.seen.filter((p) => p.startsWith('/hang/a-')).length;
    // A's pool is full: 4 requests at the upstream, the other 196 queued in Turret.
    await up.waitFor(() => hung() === PER_AGENT && up.open() === PER_AGENT, `agent A should hold ${PER_AGENT} upstream connections`, 30_000);

    const b = net.connect(t.port, '127.0.0.1');
    clients.push(b);
    const res = readResponse(b, { timeoutMs: 20_000 });
    b.write(`GET ${origin}/ok/b HTTP/1.1\r\nHost: up.turret.test:${up.port}\r\nProxy-Authorization: ${authB}\r\n\r\n`);
    const r = await res;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok 0');
    // Still every one of A's requests hung: B did not wait for them.
    assert.equal(hung(), PER_AGENT);
    assert.equal(up.seen.filter((p) => p.startsWith('/hang/a-')).length, PER_AGENT);

    // A's clients give up: every one of the 200 is recorded client_closed, and the upstream
    // connections are released.
    for (const s of clients.splice(0)) s.destroy();
    await up.waitOpen(0, 30_000);
    const rec = await waitForAudit(t, () => t.audit().filter((x) => x.event === 'request' && String(x.path).startsWith('/hang/a-')).length === HUNG, 30_000);
    assert.ok(rec, `${t.audit().filter((x) => String(x.path).startsWith('/hang/a-')).length} records for A's requests`);
    const codes = new Set(
      t
        .audit()
        .filter((x) => String(x.path).startsWith('/hang/a-'))
        .map((x) => x.code),
    );
    assert.deepEqual([...codes], ['client_closed']);
  });
});

/**
 * The queue-wait bound (upstream_queue_timeout): A's requests that find all of A's connections held
 * by hung requests are answered 503 upstream_queue_timeout once the bound passes, never reach the
 * upstream, and get one record each; the held ones are untouched, and B is served meanwhile.
 */
describe('queue-wait bound for one agent’s own requests', () => {
  let t: TurretProc;
  let up: FaultUpstream;
  const clients: net.Socket[] = [];
  const QUEUED = 3;

  before(async () => {
    up = await startFaultUpstream();
    t = await startTurret({
      rules: { 'r.yaml': RULES },
      args: ['--limit', `upstream_connections_per_agent=${PER_AGENT}`, '--limit', 'upstream_queue_timeout=1s'],
    });
  });
  after(async () => {
    for (const s of clients) s.destroy();
    await t?.stop();
    await up?.close();
  });

  it(`A's requests queued behind its ${PER_AGENT} hung ones get 503 upstream_queue_timeout, one record each`, async () => {
    const authA = basic('agent-a', await agentToken(t, 'agent-a'));
    const authB = basic('agent-b', await agentToken(t, 'agent-b'));
    const origin = `http://up.turret.test:${up.port}`;
    const send = (auth: string, p: string): net.Socket => {
      const s = net.connect(t.port, '127.0.0.1');
      s.on('error', () => {});
      s.write(`GET ${origin}${p} HTTP/1.1\r\nHost: up.turret.test:${up.port}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
      clients.push(s);
      return s;
    };
    const hung = (): number => up.seen.filter((p) => p.startsWith('/hang/held-')).length;
    const held = Array.from({ length: PER_AGENT }, (_, i) => send(authA, `/hang/held-${i}`));
    await up.waitFor(() => hung() === PER_AGENT && up.open() === PER_AGENT, `agent A should hold ${PER_AGENT} upstream connections`, 30_000);

    const queued = Array.from({ length: QUEUED }, (_, i) => {
      const s = send(authA, `/hang/queued-${i}`);
      return readResponse(s, { timeoutMs: 30_000 });
    });
    const answers = await Promise.all(queued);
    for (const r of answers) {
      assert.equal(r.status, 503);
      assert.equal(r.headers['x-turret-error'], 'upstream_queue_timeout');
      assert.match(r.body, /upstream_queue_timeout/);
    }
    // B is served meanwhile, and A's held requests are still held.
    const b = send(authB, '/ok/b');
    const rb = await readResponse(b, { timeoutMs: 20_000 });
    assert.equal(rb.status, 200);
    assert.equal(hung(), PER_AGENT);

    for (let i = 0; i < QUEUED; i++) {
      const rec = await waitForAudit(t, (x) => x.path === `/hang/queued-${i}`);
      assert.equal(rec?.outcome, 'failed');
      assert.equal(rec?.code, 'upstream_queue_timeout');
      assert.equal(rec?.status, 503);
    }
    // Release the held requests: they complete, and the queued ones were never sent upstream.
    up.release();
    for (const s of held) {
      const r = await readResponse(s, { timeoutMs: 20_000 });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'late');
    }
    await waitForAudit(t, () => t.audit().filter((x) => String(x.path).startsWith('/hang/held-')).length === PER_AGENT, 20_000);
    assert.deepEqual(
      t
        .audit()
        .filter((x) => String(x.path).startsWith('/hang/'))
        .map((x) => x.code ?? 'none')
        .sort(),
      [...Array<string>(PER_AGENT).fill('none'), ...Array<string>(QUEUED).fill('upstream_queue_timeout')].sort(),
      'one record per exchange',
    );
    assert.equal(up.seen.filter((p) => p.startsWith('/hang/queued-')).length, 0, 'a request that timed out in the queue never reached the upstream');
  });
});
