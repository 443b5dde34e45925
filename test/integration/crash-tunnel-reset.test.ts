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
import { agentToken, startTurret, until, type TurretProc } from '../helpers/turret.js';
import { basicAuth } from '../helpers/raw-proxy.js';
import { buildReply, parseQuery } from '../helpers/dns-server.js';
import { adminPort, httpGet } from '../helpers/ops.js';
import { LOOPBACK } from '../helpers/rules.js';

/** A DNS server that answers nothing until release(): then every held and later A query gets 127.0.0.1. */
async function heldDns(): Promise<{ address: string; asked: (name: string) => boolean; release: () => void; close: () => void }> {
  const sock = dgram.createSocket('udp4');
  const held: Array<{ msg: Buffer; port: number; address: string }> = [];
  const names = new Set<string>();
  let released = false;
  const answer = (msg: Buffer, port: number, address: string): void => {
    const q = parseQuery(msg);
    if (!q) return;
    const rrs = q.qtype === 1 ? [{ type: 1, ttl: 60, data: Buffer.from([127, 0, 0, 1]) }] : [];
    sock.send(buildReply(q, 0, rrs), port, address);
  };
  sock.on('message', (msg, r) => {
    const q = parseQuery(msg);
    if (q) names.add(q.name);
    if (released) answer(msg, r.port, r.address);
    else held.push({ msg, port: r.port, address: r.address });
  });
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  return {
    address: `127.0.0.1:${sock.address().port}`,
    asked: (name) => names.has(name),
    release: () => {
      released = true;
      for (const h of held.splice(0)) answer(h.msg, h.port, h.address);
    },
    close: () => sock.close(),
  };
}

let t: TurretProc;
let dns: Awaited<ReturnType<typeof heldDns>>;
let upstream: net.Server;
let upPort = 0;
/** Connections the passthrough upstream accepted, and how many of them are still open. */
let accepted = 0;
let open = 0;
let auth = '';

before(async () => {
  dns = await heldDns();
  upstream = net.createServer((s) => {
    accepted++;
    open++;
    s.on('error', () => undefined);
    s.on('close', () => open--);
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  upPort = (upstream.address() as net.AddressInfo).port;
  t = await startTurret({
    rules: {
      'r.yaml': {
        agents: ['a'],
        rules: [
          { name: 'intercepted', methods: ['read'], hosts: ['held.turret.test:443'], unsafe_addresses: LOOPBACK },
          { name: 'opaque', methods: ['any'], hosts: [`pass.turret.test:${upPort}`], passthrough: true, unsafe_addresses: LOOPBACK },
        ],
        settings: { dns_servers: [dns.address] },
      },
    },
  });
  auth = basicAuth('a', await agentToken(t, 'a'));
});
after(async () => {
  await t?.stop();
  dns.close();
  upstream.close();
});

it('a client that resets while the tunnel target resolves: a tunnel_close for every tunnel_open (or one refusal naming client_closed), no upstream connection left open', async () => {
  const admin = adminPort(t);
  for (const host of ['held.turret.test:443', `pass.turret.test:${upPort}`]) {
    const name = host.split(':')[0] ?? '';
    const s = net.connect(t.port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    s.write(`CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
    await until(() => dns.asked(name), `a DNS query for ${name}`);
    s.resetAndDestroy();
    await once(s, 'close');
    // A round trip through the proxy's event loop after the reset reached its socket: the proxy
    // has seen the close before the DNS answer is released.
    assert.equal((await httpGet(admin, '/healthz')).status, 200);
    dns.release();
    await until(
      () => t.audit().some((r) => r.host === name && (r.event === 'tunnel_close' || (r.event === 'tunnel_open' && r.outcome !== 'allowed'))),
      () => `a closing record for ${name}: ${JSON.stringify(t.audit().filter((r) => r.host === name))}`,
    );
    const recs = t.audit().filter((r) => r.host === name);
    const opened = recs.filter((r) => r.event === 'tunnel_open' && r.outcome === 'allowed').length;
    const closed = recs.filter((r) => r.event === 'tunnel_close').length;
    const refused = recs.filter((r) => r.event === 'tunnel_open' && r.outcome !== 'allowed');
    assert.equal(opened, closed, `every tunnel_open has its tunnel_close: ${JSON.stringify(recs)}`);
    assert.equal(refused.length + closed, 1, JSON.stringify(recs));
    // Refused before it opened, the record names the client's doing; a tunnel that got as far as
    // answering the client (the proxy saw the reset only then) was closed with it.
    if (refused[0]) assert.equal(refused[0].code, 'client_closed', JSON.stringify(recs));
  }
  // The passthrough upstream: nothing was dialled for a client already gone (or it was closed).
  await until(
    () => open === 0,
    () => `${open} of ${accepted} upstream connections still open`,
  );
  assert.equal(t.proc.exitCode, null);
});
