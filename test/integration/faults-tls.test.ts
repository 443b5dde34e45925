/**
 * The client's TLS handshake inside a tunnel (issue #13). A client that rejects Turret's
 * certificate, sends an alert, offers only ALPN protocols Turret does not serve, sends something
 * that is not TLS, or closes in the middle of the handshake leaves exactly one tunnel record set:
 * tunnel_open (allowed) and tunnel_close with outcome aborted, code client_tls_failed and
 * OpenSSL's reason; and one info log line with the tunnel id. Through CONNECT and through the
 * transparent listener (agent known by its source address 127.0.0.1).
 *
 * ALPN: clients offering only http/1.0 (curl -0) or no ALPN at all are served, both ways in.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { curl } from '../helpers/curl.js';
import { agentToken, basic, rawConnect } from '../helpers/ops.js';
import type { RuleFile } from '../helpers/rules.js';
import { startTurret, until, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { FIXTURES } from '../helpers/upstream.js';

// Transparent mode knows only port 443: the upstream listens there, on an address of its own.
const UPSTREAM = `127.${randomInt(2, 250)}.${randomInt(1, 250)}.${randomInt(2, 250)}`;
const NAMES = ['c-curl', 'c-alert', 'c-alpn', 'c-garbage', 'c-half', 'c-node', 't-curl', 't-alpn', 't-half', 'ok-10', 'ok-none', 'ok-t10', 'ok-tnone'];

const RULES: RuleFile = {
  agents: ['agent-a', { name: 'redirected', sources: ['127.0.0.1/32'] }],
  rules: [{ name: 'test-hosts', methods: ['read'], hosts: NAMES.map((n) => `${n}.turret.test:*`), unsafe_addresses: [`${UPSTREAM}/32`] }],
  local: Object.fromEntries(NAMES.map((n) => [`${n}.turret.test`, UPSTREAM])),
};

type Rec = Record<string, unknown>;

/** A real ClientHello as Node's TLS client sends it (captured off a local socket). */
async function clientHello(servername: string): Promise<Buffer> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const got = new Promise<Buffer>((resolve) => srv.once('connection', (s) => s.once('data', (c: Buffer) => (resolve(c), s.destroy()))));
  const c = tls.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', servername });
  c.on('error', () => {});
  const hello = await got;
  c.destroy();
  srv.close();
  return hello;
}

const closed = (s: net.Socket | tls.TLSSocket): Promise<void> => new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

describe('failed TLS handshakes inside tunnels, and ALPN', () => {
  let t: TurretProc;
  let auth: string;
  let token: string;
  let caFile: string;
  let ca: Buffer;
  let tport: number;
  let up: https.Server;

  before(async () => {
    up = https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, (req, res) =>
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok ${req.url}`),
    );
    await new Promise<void>((resolve, reject) => up.once('error', reject).listen(443, UPSTREAM, () => resolve()));
    t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--transparent', '127.0.0.1:0'] });
    tport = Number(/"transparent":"[^"]*:(\d+)"/.exec(t.stderr())?.[1]);
    assert.ok(tport > 0, t.stderr());
    token = await agentToken(t, 'agent-a');
    auth = basic('agent-a', token);
    caFile = path.join(t.caDir, 'ca.crt');
    ca = readFileSync(caFile);
  });
  after(async () => {
    await t?.stop();
    await new Promise<void>((r) => (up ? up.close(() => r()).closeAllConnections() : r()));
  });

  const recordsFor = (host: string): Rec[] => t.audit().filter((r) => r.host === host);
  /** Exactly one tunnel_open (allowed) and one tunnel_close (aborted, client_tls_failed) for `host`, and its info line. */
  const oneFailedTunnel = async (host: string, reason: RegExp): Promise<void> => {
    await waitForAudit(t, (r) => r.event === 'tunnel_close' && r.host === host, 10_000);
    const recs = recordsFor(host);
    assert.deepEqual(
      recs.map((r) => [r.event, r.outcome, r.code ?? null]),
      [
        ['tunnel_open', 'allowed', null],
        ['tunnel_close', 'aborted', 'client_tls_failed'],
      ],
      JSON.stringify(recs),
    );
    const close = recs[1]!;
    assert.match(String(close.reason), reason);
    assert.equal(close.tunnel_id, recs[0]!.tunnel_id);
    await until(() => t.stderr().includes(String(close.tunnel_id)), 'the info line of the failed handshake');
    const line = t
      .stderr()
      .split('\n')
      .find((l) => l.includes(String(close.tunnel_id)));
    const log = JSON.parse(line!) as Rec;
    assert.equal(log.level, 'info');
    assert.equal(log.msg, 'tunnel TLS handshake failed');
    assert.equal(log.code, 'client_tls_failed');
    assert.equal(log.reason, close.reason);
    assert.equal(log.host, host);
  };
  const connect = async (host: string): Promise<net.Socket> => {
    const c = await rawConnect(t.port, `${host}:443`, auth);
    assert.equal(c.status, 200);
    c.socket.on('error', () => {});
    return c.socket;
  };
  const redirected = async (): Promise<net.Socket> => {
    const s = net.connect(tport, '127.0.0.1');
    s.on('error', () => {});
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    return s;
  };

  describe('through CONNECT', () => {
    it('curl without Turret’s CA: alert unknown ca', async () => {
      const r = await curl(['-x', `http://127.0.0.1:${t.port}`, '-U', `agent-a:${token}`, 'https://c-curl.turret.test/']);
      assert.equal(r.code, 60, r.stderr);
      await oneFailedTunnel('c-curl.turret.test', /tlsv1 alert unknown ca .*does not trust Turret/);
    });

    it('a raw client that answers the ServerHello with a fatal handshake_failure alert', async () => {
      const s = await connect('c-alert.turret.test');
      s.write(await clientHello('c-alert.turret.test'));
      await new Promise<void>((resolve) => s.once('data', () => resolve()));
      s.write(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 40]));
      await closed(s);
      await oneFailedTunnel('c-alert.turret.test', /alert handshake failure/);
    });

    it('a client offering only h2 (no ALPN protocol in common)', async () => {
      const s = await connect('c-alpn.turret.test');
      const c = tls.connect({ socket: s, servername: 'c-alpn.turret.test', ca, ALPNProtocols: ['h2'] });
      const err = await new Promise<Error & { code?: string }>((resolve) => c.once('error', resolve));
      assert.equal(err.code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL');
      await oneFailedTunnel('c-alpn.turret.test', /no application protocol .*no ALPN protocol Turret serves/);
    });

    it('plain HTTP instead of a ClientHello', async () => {
      const s = await connect('c-garbage.turret.test');
      s.write('GET / HTTP/1.1\r\nHost: c-garbage.turret.test\r\n\r\n');
      const got = await new Promise<string>((resolve) => {
        let data = '';
        s.on('data', (c: Buffer) => (data += c.toString('latin1')));
        s.once('close', () => resolve(data));
      });
      assert.ok(!got.includes('HTTP/1.1 200'), 'nothing is relayed raw');
      await oneFailedTunnel('c-garbage.turret.test', /http request .*did not start a TLS handshake/);
    });

    it('a client that closes in the middle of its ClientHello', async () => {
      const s = await connect('c-half.turret.test');
      const hello = await clientHello('c-half.turret.test');
      s.end(hello.subarray(0, 40));
      await closed(s);
      await oneFailedTunnel('c-half.turret.test', /closed the connection before the TLS handshake completed/);
    });

    it('a Node client that rejects the certificate (closes without an alert)', async () => {
      const s = await connect('c-node.turret.test');
      const c = tls.connect({ socket: s, servername: 'c-node.turret.test' });
      const err = await new Promise<Error & { code?: string }>((resolve) => c.once('error', resolve));
      assert.match(String(err.code), /UNABLE_TO_VERIFY|SELF_SIGNED/);
      await closed(s);
      await oneFailedTunnel('c-node.turret.test', /closed the connection before the TLS handshake completed/);
    });
  });

  describe('through the transparent listener', () => {
    it('curl without Turret’s CA: alert unknown ca', async () => {
      const r = await curl(['--connect-to', `t-curl.turret.test:443:127.0.0.1:${tport}`, 'https://t-curl.turret.test/']);
      assert.equal(r.code, 60, r.stderr);
      await oneFailedTunnel('t-curl.turret.test', /tlsv1 alert unknown ca/);
      assert.equal(recordsFor('t-curl.turret.test')[0]!.agent, 'redirected');
    });

    it('a client offering only h2', async () => {
      const s = await redirected();
      const c = tls.connect({ socket: s, servername: 't-alpn.turret.test', ca, ALPNProtocols: ['h2'] });
      const err = await new Promise<Error & { code?: string }>((resolve) => c.once('error', resolve));
      assert.equal(err.code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL');
      await oneFailedTunnel('t-alpn.turret.test', /no application protocol/);
    });

    it('a client that closes after its ClientHello, before finishing the handshake', async () => {
      const s = await redirected();
      s.write(await clientHello('t-half.turret.test'));
      // Turret's ServerHello arrives: the tunnel is open and the handshake under way.
      await new Promise<void>((resolve) => s.once('data', () => resolve()));
      s.end();
      await closed(s);
      await oneFailedTunnel('t-half.turret.test', /closed the connection before the TLS handshake completed/);
    });

    it('a client that closes in the middle of its ClientHello: one record (no host known yet)', async () => {
      const s = await redirected();
      const client = `127.0.0.1:${s.localPort}`;
      const hello = await clientHello('t-half.turret.test');
      s.end(hello.subarray(0, 40));
      await closed(s);
      const rec = await waitForAudit(t, (r) => r.client === client);
      assert.equal(rec?.event, 'tunnel_open');
      assert.equal(rec?.outcome, 'aborted');
      assert.equal(rec?.code, 'client_tls_failed');
      assert.match(String(rec?.reason), /in the middle of its TLS ClientHello \(40 bytes\)/);
      assert.equal(t.audit().filter((r) => r.client === client).length, 1);
    });

    it('a record that is not a ClientHello is refused before any tunnel opens (bad_target, one record)', async () => {
      const s = await redirected();
      const client = `127.0.0.1:${s.localPort}`;
      s.end(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00]));
      await closed(s);
      const rec = await waitForAudit(t, (r) => r.client === client);
      assert.equal(rec?.event, 'tunnel_open');
      assert.equal(rec?.code, 'bad_target');
      assert.match(String(rec?.reason), /not a valid TLS ClientHello/);
      assert.equal(t.audit().filter((r) => r.client === client).length, 1);
    });
  });

  describe('ALPN: http/1.0 only and no ALPN are served', () => {
    const served = async (host: string): Promise<void> => {
      const rec = await waitForAudit(t, (r) => r.event === 'request' && r.host === host);
      assert.equal(rec?.outcome, 'completed', JSON.stringify(rec));
      await waitForAudit(t, (r) => r.event === 'tunnel_close' && r.host === host);
      assert.deepEqual(
        recordsFor(host).map((r) => [r.event, r.outcome]),
        [
          ['tunnel_open', 'allowed'],
          ['request', 'completed'],
          ['tunnel_close', 'completed'],
        ],
      );
    };
    // curl -0 offers ALPN http/1.0 only; --no-alpn offers none.
    for (const [flag, name] of [
      ['-0', 'ok-10'],
      ['--no-alpn', 'ok-none'],
    ] as const) {
      it(`curl ${flag} through CONNECT`, async () => {
        const r = await curl([flag, '--cacert', caFile, '-x', `http://127.0.0.1:${t.port}`, '-U', `agent-a:${token}`, `https://${name}.turret.test/x`]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.status, 200);
        assert.equal(r.body, 'ok /x');
        await served(`${name}.turret.test`);
      });
    }
    for (const [flag, name] of [
      ['-0', 'ok-t10'],
      ['--no-alpn', 'ok-tnone'],
    ] as const) {
      it(`curl ${flag} through the transparent listener`, async () => {
        const r = await curl([flag, '--cacert', caFile, '--connect-to', `${name}.turret.test:443:127.0.0.1:${tport}`, `https://${name}.turret.test/y`]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.status, 200);
        assert.equal(r.body, 'ok /y');
        await served(`${name}.turret.test`);
      });
    }

    it('a raw Node TLS client with no ALPN speaking HTTP/1.0 inside CONNECT', async () => {
      const s = await connect('ok-none.turret.test');
      const c = tls.connect({ socket: s, servername: 'ok-none.turret.test', ca });
      await new Promise<void>((resolve, reject) => c.once('secureConnect', resolve).once('error', reject));
      assert.equal(c.alpnProtocol, false);
      c.write('GET /raw HTTP/1.0\r\nHost: ok-none.turret.test\r\n\r\n');
      let data = '';
      c.on('data', (b: Buffer) => (data += b.toString('latin1')));
      await closed(c);
      assert.match(data, /^HTTP\/1\.[01] 200/);
      assert.ok(data.endsWith('ok /raw'), data);
    });
  });
});
