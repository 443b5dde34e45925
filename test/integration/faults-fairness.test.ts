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

const RULES = `
agents:
  - name: agent-a
  - name: agent-b
rules:
  - name: up
    methods: [read]
    schemes: [http]
    hosts: ["up.turret.test:*"]
    unsafe_addresses: [127.0.0.1/32]
settings:
  dns_hosts:
    up.turret.test: [127.0.0.1]
`;

const HUNG = 200;
const PER_AGENT = 4;

describe('fair upstream connections', () => {
  let t: TurretProc;
  let up: FaultUpstream;
  const clients: net.Socket[] = [];

  before(async () => {
    up = await startFaultUpstream();
    t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--limit', `upstream_connections_per_agent=${PER_AGENT}`] });
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
