/**
 * Every exchange ends (issue #13): a client that goes away at any phase — in the head, in the
 * body, while waiting for the response, in the middle of the response, or right after sending —
 * leaves exactly one audit record whose code names that cause (client_closed, outcome aborted),
 * and Turret releases the upstream connection (the upstream's own count of open sockets drops
 * back). On the proxy port and inside an intercepted tunnel. Afterwards SIGTERM exits, and a
 * request still hanging at the drain deadline is recorded as drain_deadline.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startFaultUpstream, type FaultUpstream } from '../helpers/fault-upstream.js';
import { agentToken, basic, rawConnect } from '../helpers/ops.js';
import { readResponse } from '../helpers/raw-proxy.js';
import { runCli, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const RULES: RuleFile = {
  agents: ['agent-a'],
  rules: [{ name: 'up', methods: ['read', 'POST'], schemes: ['http', 'https'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['up.turret.test'],
};

type Rec = Record<string, unknown>;

describe('client aborts at every phase', () => {
  let t: TurretProc;
  let up: FaultUpstream;
  let auth: string;
  let ca: Buffer;

  before(async () => {
    up = await startFaultUpstream();
    t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--drain-timeout', '1s'] });
    auth = basic('agent-a', await agentToken(t, 'agent-a'));
    ca = readFileSync(path.join(t.caDir, 'ca.crt'));
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  /** A client connection: plain to the proxy port, or TLS inside a CONNECT tunnel. */
  const open = async (inTunnel: boolean): Promise<{ s: net.Socket; raw: net.Socket; prefix: string; port: number }> => {
    if (!inTunnel) {
      const s = net.connect(t.port, '127.0.0.1');
      await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
      return { s, raw: s, prefix: `http://up.turret.test:${up.port}`, port: up.port };
    }
    const c = await rawConnect(t.port, `up.turret.test:${up.tlsPort}`, auth);
    assert.equal(c.status, 200);
    const s = tls.connect({ socket: c.socket, servername: 'up.turret.test', ca });
    await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
    return { s, raw: c.socket, prefix: '', port: up.tlsPort };
  };
  const head = (prefix: string, port: number, p: string, extra = ''): string =>
    `POST ${prefix}${p} HTTP/1.1\r\nHost: up.turret.test:${port}\r\n${prefix ? `Proxy-Authorization: ${auth}\r\n` : ''}${extra}`;
  const recordsFor = (p: string): Rec[] => t.audit().filter((r) => r.event === 'request' && r.path === p);
  const closed = (s: net.Socket): Promise<void> => new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

  for (const inTunnel of [false, true]) {
    const where = inTunnel ? 'inside a tunnel' : 'on the proxy port';
    const tag = inTunnel ? 'tls' : 'plain';

    it(`a head cut short ${where}: one client_closed record with the client address`, async () => {
      const { s, prefix, port } = await open(inTunnel);
      const client = `127.0.0.1:${inTunnel ? '' : s.localPort}`;
      s.write(head(prefix, port, `/ok/${tag}-head`).slice(0, -10));
      s.end();
      await closed(s);
      const rec = await waitForAudit(t, (r) => r.code === 'client_closed' && typeof r.client === 'string' && (inTunnel ? r.tunnel_id !== undefined : r.client === client));
      assert.ok(rec, `no client_closed record:\n${t.auditText().slice(-2000)}`);
      assert.equal(rec.outcome, 'aborted');
      assert.match(String(rec.reason), /head/);
    });

    it(`a body cut short ${where} (10 of 1,000 bytes, then close): one record, the upstream connection released`, async () => {
      const p = `/ok/${tag}-body`;
      const { s, prefix, port } = await open(inTunnel);
      s.write(`${head(prefix, port, p, 'Content-Length: 1000\r\n')}\r\nhello wo\r\n`);
      await up.waitSeen(p);
      s.end();
      const rec = await waitForAudit(t, (r) => r.path === p);
      assert.equal(rec?.code, 'client_closed', JSON.stringify(rec));
      assert.equal(rec?.outcome, 'aborted');
      assert.equal(rec?.bytes_in, 10);
      assert.match(String(rec?.reason), /before sending the whole request/);
      await up.waitOpen(0);
    });

    it(`a client that resets while waiting for the response ${where}: one record, the upstream connection released`, async () => {
      const p = `/hang/${tag}-wait`;
      const { s, raw, prefix, port } = await open(inTunnel);
      s.write(`${head(prefix, port, p, 'Content-Length: 2\r\n')}\r\nhi`);
      await up.waitSeen(p);
      raw.resetAndDestroy();
      const rec = await waitForAudit(t, (r) => r.path === p);
      assert.equal(rec?.code, 'client_closed', JSON.stringify(rec));
      assert.equal(rec?.status, 499);
      assert.match(String(rec?.reason), /waiting for the response/);
      await up.waitOpen(0);
    });

    it(`a client that closes right after sending ${where}: client_closed, never an upstream failure`, async () => {
      const p = `/hang/${tag}-sent`;
      const { s, prefix, port } = await open(inTunnel);
      // Whether Turret had dialled the upstream before the close arrived is a race; the cause is not.
      s.end(`${head(prefix, port, p, 'Content-Length: 2\r\n')}\r\nhi`);
      const rec = await waitForAudit(t, (r) => r.path === p);
      assert.equal(rec?.code, 'client_closed', JSON.stringify(rec));
      await up.waitOpen(0);
      s.destroy();
    });

    it(`a client that leaves mid-response ${where}: one record with the upstream status, the upstream connection released`, async () => {
      const p = `/slow/${tag}-resp`;
      const { s, prefix, port } = await open(inTunnel);
      const got = new Promise<string>((resolve) => {
        let buf = '';
        s.on('data', (c: Buffer) => {
          buf += c.toString('latin1');
          if (buf.includes('\r\n\r\n')) resolve(buf);
        });
      });
      s.write(`${head(prefix, port, p, 'Content-Length: 0\r\n')}\r\n`);
      assert.match(await got, /^HTTP\/1\.1 200/);
      s.destroy();
      const rec = await waitForAudit(t, (r) => r.path === p);
      assert.equal(rec?.code, 'client_closed', JSON.stringify(rec));
      assert.equal(rec?.status, 200);
      assert.match(String(rec?.reason), /before the whole response/);
      await up.waitOpen(0);
    });
  }

  it('wrote exactly one record per aborted exchange, and a normal request still works', async () => {
    const s = net.connect(t.port, '127.0.0.1');
    const r = readResponse(s);
    s.write(`GET http://up.turret.test:${up.port}/ok/after HTTP/1.1\r\nHost: up.turret.test:${up.port}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
    assert.equal((await r).status, 200);
    s.destroy();
    assert.ok(await waitForAudit(t, (rec) => rec.path === '/ok/after'));
    for (const tag of ['plain', 'tls']) {
      for (const p of [`/ok/${tag}-body`, `/hang/${tag}-wait`, `/hang/${tag}-sent`, `/slow/${tag}-resp`]) {
        assert.equal(recordsFor(p).length, 1, `${p}: ${JSON.stringify(recordsFor(p))}`);
      }
    }
    assert.doesNotMatch(t.auditText(), /upstream_connect_failed|internal_error|bad_request/);
  });

  it('SIGTERM exits; a request still hanging at the drain deadline is recorded as drain_deadline', async () => {
    const p = '/hang/at-shutdown';
    const s = net.connect(t.port, '127.0.0.1');
    s.on('error', () => {});
    s.write(`GET http://up.turret.test:${up.port}${p} HTTP/1.1\r\nHost: up.turret.test:${up.port}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
    await up.waitSeen(p);
    const exited = new Promise<number | null>((resolve) => t.proc.once('exit', (code) => resolve(code)));
    t.proc.kill('SIGTERM');
    // Bounded: the drain timeout is 1 s; a process that never exits fails here, not in after().
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 15_000).unref())]);
    assert.equal(code, 0, t.stderr().slice(-2000));
    const rec = recordsFor(p);
    assert.equal(rec.length, 1, t.auditText().slice(-2000));
    assert.equal(rec[0]?.code, 'drain_deadline');
    assert.equal(rec[0]?.outcome, 'aborted');
    await up.waitOpen(0);
    s.destroy();
    const verify = await runCli(['audit', 'verify', t.auditPath]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });
});
