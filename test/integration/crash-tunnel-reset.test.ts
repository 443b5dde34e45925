/**
 * A client that goes away while its tunnel is being opened (attack review of the promises nobody
 * awaits). openTunnel (tunnel.ts, not awaited by connect.ts or
 * transparent.ts) waits for the target's DNS answer before it writes the tunnel_open record and
 * watches the socket for its close: a client that reset during that wait left a tunnel_open
 * record and never a tunnel_close (the close had already happened), and a passthrough tunnel
 * dialled the upstream and held that connection open for nobody. The DNS server here holds its
 * answers until the client has gone.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { agentToken, startTurret, until, type TurretProc } from '../helpers/turret.js';
import { basicAuth } from '../helpers/raw-proxy.js';
import { buildReply, parseQuery } from '../helpers/dns-server.js';
import { adminPort, httpGet } from '../helpers/ops.js';
import { LOOPBACK } from '../helpers/rules.js';
import { countedServer, type CountedServer } from '../helpers/counted-server.js';

/** A DNS server that answers a name's A queries (127.0.0.1) only once release(name) was called. */
async function heldDns(): Promise<{ address: string; asked: (name: string) => boolean; release: (name: string) => void; close: () => void }> {
  const sock = dgram.createSocket('udp4');
  const held: Array<{ name: string; msg: Buffer; port: number; address: string }> = [];
  const names = new Set<string>();
  const released = new Set<string>();
  const answer = (msg: Buffer, port: number, address: string): void => {
    const q = parseQuery(msg);
    if (!q) return;
    const rrs = q.qtype === 1 ? [{ type: 1, ttl: 60, data: Buffer.from([127, 0, 0, 1]) }] : [];
    sock.send(buildReply(q, 0, rrs), port, address);
  };
  sock.on('message', (msg, r) => {
    const q = parseQuery(msg);
    if (!q) return;
    names.add(q.name);
    if (released.has(q.name)) answer(msg, r.port, r.address);
    else held.push({ name: q.name, msg, port: r.port, address: r.address });
  });
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  return {
    address: `127.0.0.1:${sock.address().port}`,
    asked: (name) => names.has(name),
    release: (name) => {
      released.add(name);
      for (const h of held.filter((x) => x.name === name)) answer(h.msg, h.port, h.address);
    },
    close: () => sock.close(),
  };
}

let t: TurretProc;
let dns: Awaited<ReturnType<typeof heldDns>>;
/** The passthrough upstream: the connections it accepted, and how many of them are still open. */
let upstream: CountedServer;
let upPort = 0;
let auth = '';

before(async () => {
  dns = await heldDns();
  upstream = await countedServer();
  upPort = upstream.port;
  t = await startTurret({
    rules: {
      'r.yaml': {
        agents: [{ name: 'a', sources: ['127.0.0.1/32'] }],
        rules: [
          { name: 'intercepted', methods: ['read'], hosts: ['held.turret.test:443', 'redirected.turret.test:443'], unsafe_addresses: LOOPBACK },
          { name: 'opaque', methods: ['any'], hosts: [`pass.turret.test:${upPort}`], passthrough: true, unsafe_addresses: LOOPBACK },
        ],
        settings: { dns_servers: [dns.address] },
      },
    },
    args: ['--transparent', '127.0.0.1:0'],
  });
  auth = basicAuth('a', await agentToken(t, 'a'));
});
after(async () => {
  await t?.stop();
  dns.close();
  upstream.server.close();
});

it(
  'a client that resets while the tunnel target resolves: one tunnel_open record naming client_closed, no tunnel opened, no upstream connection left open',
  { timeout: 60_000 },
  async () => {
    const admin = adminPort(t);
    const transparentPort = Number(/"transparent":"[^"]*:(\d+)"/.exec(t.stderr())?.[1]);
    // CONNECT (intercepted and passthrough), and a TLS connection redirected to the transparent listener (its SNI names the host).
    for (const host of ['held.turret.test:443', `pass.turret.test:${upPort}`, 'redirected.turret.test:443']) {
      const name = host.split(':')[0] ?? '';
      let s: net.Socket;
      if (name === 'redirected.turret.test') {
        s = net.connect(transparentPort, '127.0.0.1');
        s.on('error', () => undefined);
        await once(s, 'connect');
        tls.connect({ socket: s, servername: name }).on('error', () => undefined);
      } else {
        s = net.connect(t.port, '127.0.0.1');
        s.on('error', () => undefined);
        await once(s, 'connect');
        s.write(`CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
      }
      await until(() => dns.asked(name), `a DNS query for ${name}`);
      s.resetAndDestroy();
      await once(s, 'close');
      // A round trip through the proxy's event loop after the reset reached its socket: the proxy
      // has seen the close before the DNS answer is released.
      assert.equal((await httpGet(admin, '/healthz')).status, 200);
      dns.release(name);
      await until(
        () => t.audit().some((r) => r.host === name && (r.event === 'tunnel_close' || r.outcome !== 'allowed')),
        () => `a closing record for ${name}: ${JSON.stringify(t.audit().filter((r) => r.host === name))}`,
      );
      // Refused before it opened: one tunnel_open record naming the client's doing, no tunnel_close.
      const recs = t.audit().filter((r) => r.host === name);
      assert.equal(recs.length, 1, JSON.stringify(recs));
      assert.equal(recs[0]?.event, 'tunnel_open');
      assert.equal(recs[0]?.outcome, 'aborted');
      assert.equal(recs[0]?.code, 'client_closed');
    }
    // The passthrough upstream: a connection dialled for a client already gone is closed.
    await until(
      () => upstream.open() === 0,
      () => `${upstream.open()} of ${upstream.accepted()} upstream connections still open`,
    );
    assert.equal(t.proc.exitCode, null);
  },
);
