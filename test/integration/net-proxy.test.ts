/**
 * Guarded connects through the real turret process: names are answered by a local UDP DNS server
 * (settings.dns_servers), so rebinding is driven through the same resolver, cache and connector
 * production uses. "Refused" always means the loopback listener never accepted a connection.
 * Spellings go over raw sockets because curl rewrites them before they reach the proxy.
 * Only 127.0.0.0/8 is ever dialled: public answers appear only beside refused ones.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { curl } from '../helpers/curl.js';
import { startDnsServer, type DnsAnswer, type DnsServer } from '../helpers/dns-server.js';
import { basicAuth, rawConnect, rawRequest, readResponse } from '../helpers/raw-proxy.js';
import { agentToken, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const PUBLIC = '93.184.215.14'; // never dialled: it only ever appears beside a refused answer
const NAMED_LOOKALIKE = 'xn--80ak6aa92e.turret.test'; // "аррӏе" in Cyrillic letters only
const MIXED_LOOKALIKE = 'xn--pple-43d.turret.test'; // Cyrillic "а" + Latin "pple"

/** Any non-loopback address of this machine: it must be refused as 'self'. */
function interfaceAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) if (!i.internal && i.family === 'IPv4') return i.address;
  }
  return undefined;
}

interface Victim {
  port: number;
  accepted: number;
  close(): Promise<void>;
}

/** A plain HTTP listener that counts accepted connections; `port` 0 = any. */
async function listen(host: string, port: number, onReq: http.RequestListener): Promise<Victim> {
  const server = http.createServer(onReq);
  const v = { port: 0, accepted: 0, close: () => new Promise<void>((r) => server.close(() => r())) };
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    v.accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  v.port = (server.address() as AddressInfo).port;
  v.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return v;
}

describe('guarded connects through the real proxy', () => {
  let t: TurretProc;
  let dns: DnsServer;
  let victim: Victim; // plain HTTP on 127.0.0.1: every refusal must leave it untouched
  let good: Victim; // plain HTTP on 127.0.0.2 (same port): the "legitimate" first answer of a rebind
  let up: Upstream; // HTTPS on 127.0.0.1 for the exactly-named look-alike
  let auth: string;
  let authB: string;
  let caFile: string;
  const self = interfaceAddress();
  const answers: Record<string, (nth: number) => DnsAnswer> = {
    'mixed.test': () => ({ addresses: [PUBLIC, '127.0.0.1'], ttl: 60 }),
    'mapped.test': () => ({ addresses: ['::ffff:127.0.0.1'], ttl: 60 }),
    'loop.test': () => ({ addresses: ['127.0.0.1'], ttl: 60 }),
    'rebind-seq.test': (n) => ({ addresses: [n === 0 ? '127.0.0.2' : '127.0.0.1'], ttl: 0 }),
    'rebind-tunnel.test': (n) => ({ addresses: [n === 0 ? '127.0.0.2' : '127.0.0.1'], ttl: 0 }),
    'self.test': () => ({ addresses: [self ?? '127.0.0.1'], ttl: 60 }),
    'servfail.test': () => 'servfail',
    [NAMED_LOOKALIKE]: () => ({ addresses: ['127.0.0.1'], ttl: 60 }),
    [MIXED_LOOKALIKE]: () => ({ addresses: ['127.0.0.1'], ttl: 60 }),
  };

  before(async () => {
    dns = await startDnsServer((name, type, nth) => (type === 'A' || name === 'mapped.test' ? (answers[name]?.(nth) ?? 'nxdomain') : { addresses: [] }));
    good = await listen('127.0.0.2', 0, (_req, res) => {
      res.writeHead(200, { connection: 'close', 'content-type': 'text/plain' });
      res.end('good');
    });
    victim = await listen('127.0.0.1', good.port, (_req, res) => res.end('VICTIM'));
    up = await startUpstream();
    const rules: RuleFile = {
      agents: ['agent-a', 'agent-b'],
      rules: [
        { name: 'rebind', agents: ['agent-a'], methods: ['read'], hosts: ['rebind-seq.test:*', 'rebind-tunnel.test:*'], unsafe_addresses: ['127.0.0.2/32'] },
        { name: 'named-lookalike', agents: ['agent-a'], methods: ['read'], hosts: [`${NAMED_LOOKALIKE}:*`], unsafe_addresses: LOOPBACK },
        { name: 'anything', agents: ['agent-a'], methods: ['read'], hosts: ['*:*'] },
        { name: 'one-port', agents: ['agent-b'], methods: ['read'], hosts: [`b.turret.test:${up.port}`], unsafe_addresses: LOOPBACK },
      ],
      settings: { dns_servers: [dns.address] },
      local: ['b.turret.test'],
    };
    t = await startTurret({ rules: { 'net.yaml': rules } });
    caFile = path.join(t.caDir, 'ca.crt');
    for (const agent of ['agent-a', 'agent-b']) {
      const token = await agentToken(t, agent);
      if (agent === 'agent-a') auth = basicAuth(agent, token);
      else authB = basicAuth(agent, token);
    }
  });

  after(async () => {
    await t?.stop();
    await Promise.all([dns?.close(), victim?.close(), good?.close(), up?.close()]);
  });

  const get = (host: string, port = victim.port) => rawRequest(t.port, `GET http://${host}:${port}/ HTTP/1.1\r\nHost: ${host}:${port}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
  const connect = async (host: string, port = victim.port, a = auth) => {
    const { res, socket } = await rawConnect(t.port, `${host}:${port}`, a);
    socket.destroy();
    return res;
  };

  it('refuses IPv4-mapped IPv6 and numeric spellings of loopback, absolute-form and CONNECT alike', async () => {
    const spellings = [
      '[::ffff:127.0.0.1]',
      '[::ffff:7f00:1]',
      '[0:0:0:0:0:ffff:127.0.0.1]',
      '2130706433',
      '0x7f.1',
      '0177.0.0.1',
      '127.1',
      '0x7f000001',
      '017700000001',
      '127.0.0.1.',
      '[::1]',
      '[::127.0.0.1]',
      '0',
      '0.0.0.0',
      '[64:ff9b::7f00:1]',
    ];
    for (const host of spellings) {
      for (const [via, r] of [
        ['absolute-form', await get(host)],
        ['CONNECT', await connect(host)],
      ] as const) {
        assert.equal(r.status, 403, `${via} ${host}: ${r.body}`);
        assert.equal(r.headers['x-turret-error'], 'dest_address_forbidden', `${via} ${host}`);
        assert.match(r.body, /loopback|unspecified|this_network|NAT64/, `${via} ${host}: the reason names the class`);
      }
    }
    // Real curl too (it sends the canonical form; the bracketed mapped literal survives).
    const proxy = ['-x', `http://127.0.0.1:${t.port}`, '--proxy-header', `Proxy-Authorization: ${auth}`, '--cacert', caFile];
    for (const scheme of ['http', 'https']) {
      const r = await curl([...proxy, `${scheme}://[::ffff:127.0.0.1]:${victim.port}/`]);
      assert.equal(r.status, 403, r.raw + r.stderr);
      assert.equal(r.headers['x-turret-error'], 'dest_address_forbidden');
    }
    assert.equal(victim.accepted, 0, 'the loopback listener never received a connection');
  });

  it('refuses a name answering a public and a loopback address, without dialling either', async () => {
    for (const r of [await get('mixed.test'), await connect('mixed.test'), await get('mapped.test'), await connect('mapped.test'), await get('loop.test')]) {
      assert.equal(r.status, 403, r.body);
      assert.equal(r.headers['x-turret-error'], 'dest_address_forbidden');
      assert.match(r.body, /resolves to a refused address: loopback/);
      assert.ok(!r.body.includes('127.0.0.1') && !r.body.includes('7f00'), 'the agent never learns the internal address');
    }
    assert.equal(victim.accepted, 0);
    // The audit record carries the class in its reason, and no internal address either.
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.host === 'mixed.test');
    assert.equal(rec?.code, 'dest_address_forbidden');
    assert.match(String(rec?.reason), /loopback: loopback address \(RFC 1122\)/);
    assert.ok(!String(rec?.reason).includes('127.0.0.1'));
    const tun = await waitForAudit(t, (x) => x.event === 'tunnel_open' && x.host === 'mapped.test');
    assert.equal(tun?.code, 'dest_address_forbidden');
    assert.match(String(tun?.reason), /loopback address \(RFC 1122\) inside IPv4-mapped IPv6/);
    assert.ok(!String(tun?.reason).includes('ffff'));
  });

  it('rebinding over time: the allowed first answer is served, the loopback second one is refused', async () => {
    const first = await get('rebind-seq.test', good.port);
    assert.equal(first.status, 200, first.body);
    assert.equal(first.body, 'good');
    await new Promise((r) => setTimeout(r, 1_300)); // TTL 0 is held for the 1 s minimum, no longer
    const second = await get('rebind-seq.test', good.port);
    assert.equal(second.status, 403, second.body);
    assert.equal(second.headers['x-turret-error'], 'dest_address_forbidden');
    assert.equal(dns.count('rebind-seq.test', 'A'), 2, 'the name was resolved again, and that answer was checked');
    assert.equal(good.accepted, 1);
    assert.equal(victim.accepted, 0, 'the rebound address was never dialled');
  });

  it('rebinding inside a tunnel: the check at CONNECT does not vouch for the connect made later', async () => {
    const { res, socket } = await rawConnect(t.port, `rebind-tunnel.test:${victim.port}`, auth);
    try {
      assert.equal(res.status, 200, 'at CONNECT time the name answered an excepted address');
      await new Promise((r) => setTimeout(r, 1_300));
      const s = tls.connect({ socket, servername: 'rebind-tunnel.test', ca: readFileSync(caFile) });
      await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
      const inner = readResponse(s);
      s.write(`GET / HTTP/1.1\r\nHost: rebind-tunnel.test:${victim.port}\r\n\r\n`);
      const r = await inner;
      assert.equal(r.status, 403, r.body);
      assert.equal(r.headers['x-turret-error'], 'dest_address_forbidden');
      s.destroy();
    } finally {
      socket.destroy();
    }
    assert.equal(dns.count('rebind-tunnel.test', 'A'), 2);
    assert.equal(victim.accepted, 0);
  });

  it("refuses this machine's own interface addresses as 'self', and keeps loopback 'loopback'", async () => {
    const loop = await get('loop.test');
    assert.match(loop.body, /: loopback: /, 'a loopback answer is not relabelled self');
    if (self) {
      for (const r of [await get('self.test'), await get(self), await connect(self)]) {
        assert.equal(r.status, 403, r.body);
        assert.match(r.body, /: self: an address of the proxy's own host/);
      }
    }
    assert.equal(victim.accepted, 0);
  });

  it('refuses look-alike names before resolving them, unless a rule names the host exactly', async () => {
    const before = victim.accepted;
    for (const host of [MIXED_LOOKALIKE, 'xn--80ak6aa92e.com', 'xn--l-7sba6dbr.turret.test']) {
      for (const r of [await get(host), await connect(host)]) {
        assert.equal(r.status, 403, `${host}: ${r.body}`);
        assert.equal(r.headers['x-turret-error'], 'dest_host_lookalike');
      }
      assert.equal(dns.count(host), 0, `${host} was never looked up`);
    }
    // The exactly named look-alike passes, over plain HTTP and through an intercepted tunnel.
    const plain = await get(NAMED_LOOKALIKE);
    assert.equal(plain.status, 200, plain.body);
    assert.equal(plain.body, 'VICTIM');
    assert.equal(victim.accepted, before + 1, 'only the exactly named look-alike connected');
    const proxy = ['-x', `http://127.0.0.1:${t.port}`, '--proxy-header', `Proxy-Authorization: ${auth}`, '--cacert', caFile];
    const r = await curl([...proxy, `https://${NAMED_LOOKALIKE}:${up.port}/x`]);
    assert.equal(r.status, 200, r.raw + r.stderr);
    assert.equal(up.received.at(-1)?.url, '/x');
  });

  it('answers 502 dns_failed for names that do not resolve, asking the configured server', async () => {
    for (const host of ['nx.test', 'servfail.test']) {
      for (const r of [await get(host), await connect(host)]) {
        assert.equal(r.status, 502, `${host}: ${r.body}`);
        assert.equal(r.headers['x-turret-error'], 'dns_failed');
        assert.match(r.body, /not a policy decision/);
      }
      assert.ok(dns.count(host, 'A') >= 1, `${host} was asked of the configured DNS server`);
    }
  });

  it('answers 400 to malformed authorities, absolute-form and CONNECT alike', async () => {
    const before = victim.accepted;
    const bad = [
      'victim.test:0',
      'victim.test:65536',
      'victim.test:99999999',
      'user@victim.test:80',
      'victim.test:',
      ':80',
      '[::1:80',
      '[fe80::1%25lo]:80',
      '1.2.3.256:80',
      'a..b:80',
      'a%00b:80',
      'foo.123:80',
      '[::ffff:0177.0.0.1]:80',
    ];
    for (const authority of bad) {
      const a = await rawRequest(t.port, `GET http://${authority}/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${auth}\r\n\r\n`);
      assert.equal(a.status, 400, `absolute-form ${authority}: ${a.body}`);
      const { res, socket } = await rawConnect(t.port, authority, auth);
      socket.destroy();
      assert.equal(res.status, 400, `CONNECT ${authority}: ${res.body}`);
    }
    assert.equal(victim.accepted, before);
  });

  it('refuses CONNECT to a port no rule names, and closes a tunnel whose client does not speak TLS', async () => {
    const denied = await connect('b.turret.test', up.port + 1 > 65535 ? up.port - 1 : up.port + 1, authB);
    assert.equal(denied.status, 403);
    assert.equal(denied.headers['x-turret-error'], 'policy_denied');
    // The named port opens, but plain HTTP inside the tunnel fails the handshake: nothing is relayed.
    const before = up.received.length;
    const { res, socket } = await rawConnect(t.port, `b.turret.test:${up.port}`, authB);
    assert.equal(res.status, 200);
    const closed = new Promise<string>((resolve) => {
      let data = '';
      socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
      socket.once('close', () => resolve(data));
    });
    socket.write(`GET / HTTP/1.1\r\nHost: b.turret.test:${up.port}\r\n\r\n`);
    const data = await closed;
    assert.ok(!data.includes('HTTP/1.1 200'), 'no HTTP answer came back through the tunnel');
    assert.equal(up.received.length, before, 'the upstream received nothing');
    const rec = await waitForAudit(t, (x) => x.event === 'tunnel_close' && x.host === 'b.turret.test');
    // Since #13 the failed handshake is named in the tunnel's close record (it said "completed" before).
    assert.equal(rec?.outcome, 'aborted', JSON.stringify(rec));
    assert.equal(rec?.code, 'client_tls_failed', JSON.stringify(rec));
  });
});
