/**
 * The guarded connect against real sockets on loopback (port 0 only). The listener counts what it
 * accepts: "refused" means the listener saw nothing, not merely that an error came back. Names are
 * resolved by injected lookups: no real DNS, no traffic beyond 127.0.0.0/8.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { webcrypto } from 'node:crypto';
import 'reflect-metadata'; // @peculiar/x509 needs it loaded first
import * as x509 from '@peculiar/x509';
import { guardedConnect, interfaceAddresses, type GuardedConnectOptions } from '../../src/net/connect.js';
import { createResolver, type LookupFn } from '../../src/net/resolver.js';
import { compileExceptions } from '../../src/net/exceptions.js';
import { parseAuthority } from '../../src/net/host.js';
import { isTurretError } from '../../src/core/errors.js';

interface Listener {
  port: number;
  accepted: number;
  server: net.Server;
}

async function listen(server: net.Server, onConn: (s: net.Socket) => void = (s) => s.destroy()): Promise<Listener> {
  const l: Listener = { port: 0, accepted: 0, server };
  server.on('connection', (s) => {
    l.accepted++;
    onConn(s);
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  l.port = (server.address() as net.AddressInfo).port;
  return l;
}

const settle = () => new Promise((r) => setTimeout(r, 50));
const code = (c: string) => (e: unknown) => isTurretError(e) && e.code === c;

function lookupFrom(table: Record<string, string[] | ((n: number) => string[])>): LookupFn & { calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const fn = async (host: string) => {
    const n = calls.get(host) ?? 0;
    calls.set(host, n + 1);
    const entry = table[host];
    if (!entry) throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
    const list = typeof entry === 'function' ? entry(n) : entry;
    return list.map((address) => ({ address, family: (address.includes(':') ? 6 : 4) as 4 | 6, ttl: 0 }));
  };
  return Object.assign(fn, { calls });
}

const UNSAFE_LOOPBACK = compileExceptions([{ cidrs: ['127.0.0.0/8', '::1/128'], unsafe: true }]);
let plain: Listener;
const resources: Array<{ close(): unknown }> = [];

before(async () => {
  plain = await listen(net.createServer());
  resources.push(plain.server);
});
after(() => {
  for (const r of resources) r.close();
});

async function connectVia(authority: string, extra: Partial<GuardedConnectOptions> = {}) {
  const t = parseAuthority(authority, plain.port);
  const resolver = createResolver({ lookup: lookupFrom({ localhost: ['127.0.0.1', '::1'], 'loop.test': ['127.0.0.1'] }), minTtlMs: 0 });
  const s = await guardedConnect({ ...t, resolver, timeoutMs: 2_000, ...extra });
  const remote = s.remoteAddress;
  s.destroy();
  return remote;
}

test('no spelling of loopback reaches the listener without an unsafe exception', async () => {
  const spellings = [
    '127.0.0.1',
    '2130706433',
    '0x7f.1',
    '0177.0.0.1',
    '127.1',
    '0x7F000001',
    '127.0.0.1.',
    '[::ffff:127.0.0.1]',
    '[::ffff:7f00:1]',
    '[64:ff9b::127.0.0.1]',
    '[::127.0.0.1]',
    'localhost',
    'LOOP.test.',
    '127\u30020\u30020\u30021',
  ];
  const refused: string[] = [];
  for (const s of spellings) {
    await assert.rejects(connectVia(s, { onRefused: (c) => refused.push(c.class) }), code('dest_address_forbidden'), s);
  }
  await settle();
  assert.equal(plain.accepted, 0);
  assert.equal(refused.length, spellings.length);
  assert.ok(refused.every((c) => c === 'loopback'));
});

test('a private-only exception does not open loopback', async () => {
  const permit = compileExceptions([{ cidrs: ['10.0.0.0/8'], unsafe: false }]);
  await assert.rejects(connectVia('127.0.0.1', { permit }), code('dest_address_forbidden'));
  await settle();
  assert.equal(plain.accepted, 0);
});

test('with an unsafe loopback exception the same target connects, to the checked address', async () => {
  const before = plain.accepted;
  assert.equal(await connectVia('2130706433', { permit: UNSAFE_LOOPBACK }), '127.0.0.1');
  await connectVia('loop.test', { permit: UNSAFE_LOOPBACK });
  await settle();
  assert.equal(plain.accepted, before + 2);
});

test('rebinding: a name answering public and loopback together is refused; nothing is dialled', async () => {
  const lookup = lookupFrom({ 'rebind.test': ['93.184.216.34', '127.0.0.1'] });
  const before = plain.accepted;
  await assert.rejects(
    guardedConnect({ host: 'rebind.test', port: plain.port, kind: 'name', resolver: createResolver({ lookup }), timeoutMs: 2_000 }),
    code('dest_address_forbidden'),
  );
  await settle();
  assert.equal(plain.accepted, before);
  assert.equal(lookup.calls.get('rebind.test'), 1);
});

test('no time-of-check gap: the dialler uses the checked answer even when DNS changes its mind', async () => {
  // 1st answer 127.0.0.3 (permitted, nothing listens there); every later answer is the listener.
  const lookup = lookupFrom({ 'swap.test': (n) => (n === 0 ? ['127.0.0.3'] : ['127.0.0.1']) });
  const permit = compileExceptions([{ cidrs: ['127.0.0.3/32'], unsafe: true }]);
  const before = plain.accepted;
  await assert.rejects(
    guardedConnect({ host: 'swap.test', port: plain.port, kind: 'name', resolver: createResolver({ lookup, minTtlMs: 0, maxTtlMs: 0 }), permit, timeoutMs: 2_000 }),
    code('upstream_connect_failed'),
  );
  await settle();
  assert.equal(plain.accepted, before, 'a second lookup would have reached the listener');
  assert.equal(lookup.calls.get('swap.test'), 1);
});

test('a checked address that fails falls through to the next checked one (both families)', async () => {
  const lookup = lookupFrom({ multi: ['127.0.0.2', '::1', '127.0.0.1'] });
  const before = plain.accepted;
  const s = await guardedConnect({ host: 'multi', port: plain.port, kind: 'name', resolver: createResolver({ lookup }), permit: UNSAFE_LOOPBACK, timeoutMs: 3_000 });
  assert.equal(s.remoteAddress, '127.0.0.1');
  s.destroy();
  await settle();
  assert.equal(plain.accepted, before + 1);
});

test('all checked addresses failing is upstream_connect_failed; a slow resolver is upstream_timeout', async () => {
  const dead = lookupFrom({ dead: ['127.0.0.2', '127.0.0.3'] });
  await assert.rejects(
    guardedConnect({ host: 'dead', port: plain.port, kind: 'name', resolver: createResolver({ lookup: dead }), permit: UNSAFE_LOOPBACK }),
    code('upstream_connect_failed'),
  );
  const slow: LookupFn = () => new Promise((res) => setTimeout(() => res([{ address: '127.0.0.1', family: 4 }]), 500));
  await assert.rejects(
    guardedConnect({ host: 'slow', port: plain.port, kind: 'name', resolver: createResolver({ lookup: slow }), permit: UNSAFE_LOOPBACK, timeoutMs: 50 }),
    code('upstream_timeout'),
  );
  await assert.rejects(guardedConnect({ host: 'nx', port: plain.port, kind: 'name', resolver: createResolver({ lookup: dead }) }), code('dns_failed'));
});

test('an aborted connect fails and leaves no connection', async () => {
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    guardedConnect({ host: '127.0.0.1', port: plain.port, kind: 'ipv4', resolver: createResolver({ lookup: lookupFrom({}) }), permit: UNSAFE_LOOPBACK, signal: ac.signal }),
    code('upstream_connect_failed'),
  );
});

test('an abort while the name is still being resolved fails at once, not at the resolver deadline (shutdown)', async () => {
  let asked = 0;
  // A resolver that never answers: only the abort can end this connect before its 60 s deadline.
  const hung: LookupFn = () => {
    asked++;
    return new Promise(() => undefined);
  };
  const ac = new AbortController();
  const p = guardedConnect({
    host: 'hung.turret.test',
    port: plain.port,
    kind: 'name',
    resolver: createResolver({ lookup: hung }),
    permit: UNSAFE_LOOPBACK,
    timeoutMs: 60_000,
    signal: ac.signal,
  });
  const outcome = p.then(
    () => 'connected',
    (e: unknown) => e,
  );
  await new Promise<void>((r) => setImmediate(r));
  assert.equal(asked, 1, 'the lookup is under way');
  const before = plain.accepted;
  ac.abort();
  // Settled within the turn the abort happened in (no timer can have fired meanwhile).
  const first = await Promise.race([outcome, new Promise((r) => setImmediate(() => r('still pending')))]);
  assert.ok(code('upstream_connect_failed')(first), String(first));
  assert.match((first as Error).message, /aborted/);
  assert.equal(plain.accepted, before, 'nothing was dialed');
});

async function selfSigned(dns: string) {
  x509.cryptoProvider.set(webcrypto as never); // Node's webcrypto is the provider; the DOM type is not in our lib
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${dns}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: dns }])],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
  return { cert: cert.toString('pem'), key };
}

test('TLS: SNI and verification against the given CA; failures are upstream_tls_failed', async () => {
  const { cert, key } = await selfSigned('upstream.test');
  const seenSni: string[] = [];
  const ctx = tls.createSecureContext({ cert, key });
  const SNICallback = (name: string, cb: (err: Error | null, c?: tls.SecureContext) => void) => {
    seenSni.push(name);
    cb(null, ctx);
  };
  const server = tls.createServer({ cert, key, ALPNProtocols: ['http/1.1'], SNICallback }, (s) => s.end());
  server.on('tlsClientError', () => {});
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  resources.push(server);
  const port = (server.address() as net.AddressInfo).port;
  const resolver = createResolver({ lookup: lookupFrom({ 'upstream.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] }) });
  const base = { port, kind: 'name' as const, resolver, permit: UNSAFE_LOOPBACK, timeoutMs: 3_000 };

  const ok = (await guardedConnect({ ...base, host: 'upstream.test', tls: { servername: 'upstream.test', ca: cert, ALPNProtocols: ['http/1.1'] } })) as tls.TLSSocket;
  assert.equal(ok.authorized, true);
  assert.equal(ok.alpnProtocol, 'http/1.1');
  ok.destroy();
  assert.deepEqual(seenSni, ['upstream.test']);

  await assert.rejects(guardedConnect({ ...base, host: 'upstream.test', tls: { servername: 'upstream.test' } }), code('upstream_tls_failed'), 'untrusted CA');
  await assert.rejects(guardedConnect({ ...base, host: 'other.test', tls: { servername: 'other.test', ca: cert } }), code('upstream_tls_failed'), 'wrong name');

  // A prebuilt context (what the proxy passes) verifies exactly like `ca`, names included.
  const trusted = tls.createSecureContext({ ca: cert, minVersion: 'TLSv1.2' });
  const viaCtx = (await guardedConnect({ ...base, host: 'upstream.test', tls: { servername: 'upstream.test', secureContext: trusted } })) as tls.TLSSocket;
  assert.equal(viaCtx.authorized, true);
  viaCtx.destroy();
  await assert.rejects(
    guardedConnect({ ...base, host: 'other.test', tls: { servername: 'other.test', secureContext: trusted } }),
    code('upstream_tls_failed'),
    'wrong name with a context',
  );
  const roots = tls.createSecureContext({ minVersion: 'TLSv1.2' });
  await assert.rejects(
    guardedConnect({ ...base, host: 'upstream.test', tls: { servername: 'upstream.test', secureContext: roots } }),
    code('upstream_tls_failed'),
    'untrusted CA with a context',
  );

  // A plain TCP upstream that hangs up, and one that never speaks.
  await assert.rejects(guardedConnect({ ...base, host: 'upstream.test', port: plain.port, tls: { servername: 'upstream.test', ca: cert } }), code('upstream_tls_failed'));
  const mute = await listen(net.createServer(), () => {});
  resources.push(mute.server);
  await assert.rejects(
    guardedConnect({ ...base, host: 'upstream.test', port: mute.port, timeoutMs: 300, tls: { servername: 'upstream.test', ca: cert } }),
    code('upstream_timeout'),
  );
});

test('interfaceAddresses: canonical addresses of this host plus the listen addresses given', () => {
  const self = interfaceAddresses(['[2001:DB8::7]', '203.0.114.9', '0.0.0.0', 'not-an-ip']);
  assert.ok(self.has('127.0.0.1'));
  assert.ok(self.has('2001:db8::7'));
  assert.ok(self.has('203.0.114.9'));
  assert.ok(!self.has('0.0.0.0'));
});
