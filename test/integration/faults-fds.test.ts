/**
 * At the open-files limit, for real (issue #13): Turret runs under `prlimit --nofile=128:128`.
 *
 * - With the derived cap (max_client_connections = (128 − 64) / 2 = 32), connections past the cap
 *   are refused and counted one for one in turret_accept_failures_total, the accepted ones are
 *   still served (the cap leaves each of them a descriptor for its upstream), and after they close
 *   new connections are accepted again.
 * - With the cap set above what the limit allows, client connections really exhaust the
 *   descriptors: libuv drops the next connection, an upstream connect then fails with EMFILE and
 *   is recorded `emfile` (503), not upstream_connect_failed, and so is a passthrough tunnel's. The process stays up, and once the
 *   connections close requests work again. Exactly one record per exchange throughout.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startFaultUpstream, type FaultUpstream } from '../helpers/fault-upstream.js';
import { adminPort, agentToken, basic, httpGet } from '../helpers/ops.js';
import { parsePrometheusText } from '../helpers/prometheus.js';
import { readResponse, type RawResponse } from '../helpers/raw-proxy.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';
import { startTurret, until, waitForAudit, type TurretProc } from '../helpers/turret.js';

const RULES: RuleFile = {
  agents: ['agent-a'],
  rules: [
    { name: 'up', methods: ['read'], schemes: ['http'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK },
    { name: 'pinned', methods: ['any'], hosts: ['pass.turret.test:*'], passthrough: true, unsafe_addresses: LOOPBACK },
  ],
  local: ['up.turret.test', 'pass.turret.test'],
  testCa: false,
};
const LIMIT = 128;
const PRLIMIT = ['prlimit', `--nofile=${LIMIT}:${LIMIT}`, '--'];

type Rec = Record<string, unknown>;

async function metric(t: TurretProc, name: string, labels: Record<string, string>): Promise<number> {
  const r = await httpGet(adminPort(t), '/metrics');
  assert.equal(r.status, 200);
  const s = parsePrometheusText(r.body).samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value ?? 0;
}

/** A connection to the proxy that records whether the server closed it. */
interface Client {
  s: net.Socket;
  closed: boolean;
}
async function dial(port: number): Promise<Client> {
  const c: Client = { s: net.connect(port, '127.0.0.1'), closed: false };
  c.s.on('error', () => {});
  c.s.once('close', () => (c.closed = true));
  await new Promise<void>((resolve) => c.s.once('connect', () => resolve()).once('close', () => resolve()));
  return c;
}

describe('at the open-files limit', () => {
  let t: TurretProc | undefined;
  let up: FaultUpstream | undefined;
  const clients: Client[] = [];
  after(async () => {
    for (const c of clients) c.s.destroy();
    await t?.stop();
    await up?.close();
  });

  const get = (auth: string, p: string, host = `up.turret.test:${up!.port}`): string => `GET http://${host}${p} HTTP/1.1\r\nHost: ${host}\r\nProxy-Authorization: ${auth}\r\n\r\n`;
  const ask = async (c: Client, text: string): Promise<RawResponse> => {
    const res = readResponse(c.s, { timeoutMs: 20_000 });
    c.s.write(text);
    return res;
  };
  const closeAll = async (): Promise<void> => {
    const all = clients.splice(0);
    for (const c of all) c.s.destroy();
    await until(() => all.every((c) => c.closed), 'every client socket closed');
  };

  it('the derived cap refuses connections past it, counts each one, and keeps serving', async () => {
    up = await startFaultUpstream();
    t = await startTurret({ rules: { 'r.yaml': RULES }, prefix: PRLIMIT });
    const cap = (LIMIT - 64) / 2;
    assert.match(t.stderr(), new RegExp(`"msg":"client connections capped","max_client_connections":${cap},"open_files_limit":${LIMIT}`));
    const auth = basic('agent-a', await agentToken(t, 'agent-a'));
    const EXTRA = 10;
    for (let i = 0; i < cap + EXTRA; i++) clients.push(await dial(t.port));
    // Node accepts in order: the first `cap` stay open, the rest are closed by Turret.
    await until(
      () => clients.filter((c) => c.closed).length === EXTRA,
      () => `${clients.filter((c) => c.closed).length} of ${cap + EXTRA} closed, expected ${EXTRA}`,
    );
    assert.equal(await metric(t, 'turret_accept_failures_total', { listener: 'proxy', reason: 'max_connections' }), EXTRA);
    assert.match(t.stderr(), /"level":"warn","msg":"connection refused: the listener holds max_client_connections connections/);
    // Every accepted connection can still reach the upstream: the cap left it a descriptor.
    const open = clients.filter((c) => !c.closed);
    assert.equal(open.length, cap);
    const answers = await Promise.all(open.map((c, i) => ask(c, get(auth, `/ok/capped-${i}`))));
    assert.deepEqual(new Set(answers.map((r) => r.status)), new Set([200]));
    await closeAll();
    // Below the cap again: a new connection is accepted and served.
    const fresh = await dial(t.port);
    clients.push(fresh);
    assert.equal((await ask(fresh, get(auth, '/ok/after-cap'))).status, 200);
    await waitForAudit(t, (r) => r.path === '/ok/after-cap');
    assert.equal(t.audit().filter((r) => String(r.path).startsWith('/ok/capped-')).length, cap, 'one record per exchange');
    assert.equal(t.proc.exitCode, null);
    await closeAll();
    await t.stop();
    t = undefined;
  });

  it('descriptors really exhausted: an upstream connect is recorded emfile, and the process recovers', async () => {
    t = await startTurret({ rules: { 'r.yaml': RULES }, prefix: PRLIMIT, args: ['--limit', 'max_client_connections=10000'] });
    const auth = basic('agent-a', await agentToken(t, 'agent-a'));
    // The connection that will ask for the upstream once nothing is left.
    const k = await dial(t.port);
    clients.push(k);
    assert.equal((await ask(k, get(auth, '/', 'denied.turret.test:80'))).status, 403);
    // And the one that will ask for an opaque tunnel (Turret dials before answering the CONNECT).
    const k2 = await dial(t.port);
    clients.push(k2);
    assert.equal((await ask(k2, get(auth, '/', 'denied.turret.test:80'))).status, 403);
    // Take descriptors one connection at a time (each answered 403 without any upstream) until
    // Turret can no longer accept: libuv closes the connection unanswered.
    let dropped: Client | null = null;
    for (let i = 0; i < LIMIT && !dropped; i++) {
      const c = await dial(t.port);
      clients.push(c);
      const r = await ask(c, get(auth, `/fill-${i}`, 'denied.turret.test:80')).catch(() => null);
      if (r) assert.equal(r.status, 403);
      else dropped = c;
    }
    assert.ok(dropped, `Turret accepted ${LIMIT} connections under a limit of ${LIMIT} descriptors`);
    const fills = clients.length - 3;

    // No descriptor for an upstream socket: 503 emfile, not upstream_connect_failed.
    const r = await ask(k, get(auth, '/ok/at-limit'));
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-turret-error'], 'emfile');
    const rec = await waitForAudit(t, (x) => x.path === '/ok/at-limit');
    assert.equal(rec?.code, 'emfile');
    assert.equal(rec?.outcome, 'failed');
    // A passthrough tunnel's upstream socket: the same.
    const tr = await ask(k2, `CONNECT pass.turret.test:${up!.port} HTTP/1.1\r\nHost: pass.turret.test:${up!.port}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
    assert.equal(tr.status, 503);
    assert.equal(tr.headers['x-turret-error'], 'emfile');
    const topen = await waitForAudit(t, (x) => x.event === 'tunnel_open' && x.host === 'pass.turret.test');
    assert.equal(topen?.code, 'emfile');
    assert.equal(topen?.outcome, 'failed');
    assert.equal(t.proc.exitCode, null, 'still running');
    // One warn line for both (throttled: at most one per 10 s), with how many it stands for.
    const warns = t
      .stderr()
      .split('\n')
      .filter((l) => l.includes('"msg":"upstream connect failed: no file descriptor left'));
    assert.equal(warns.length, 1, t.stderr());
    assert.equal((JSON.parse(warns[0]!) as Rec).level, 'warn');

    // Connections close: requests work again, and the metrics say what happened.
    await closeAll();
    const fresh = await dial(t.port);
    clients.push(fresh);
    const ok = await ask(fresh, get(auth, '/ok/recovered'));
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'ok 0');
    assert.equal(await metric(t, 'turret_requests_total', { agent: 'agent-a', code: 'emfile' }), 2);
    assert.equal(t.audit().filter((x) => x.host === 'pass.turret.test').length, 1, 'one record for the refused tunnel');
    await waitForAudit(t, (x) => x.path === '/ok/recovered');
    const recs = t.audit().filter((x) => x.event === 'request') as Rec[];
    assert.equal(recs.filter((x) => x.path === '/ok/at-limit').length, 1);
    assert.equal(recs.filter((x) => x.path === '/ok/recovered').length, 1);
    assert.equal(recs.filter((x) => String(x.path).startsWith('/fill-')).length, fills, 'one record per answered connection');
    assert.equal(recs.filter((x) => x.code === 'upstream_connect_failed').length, 0);
    assert.equal(t.proc.exitCode, null);
  });
});
