/**
 * A tunnel or WebSocket session opened on a connection that already carried a keep-alive request
 * (attack review, crashrev2). Node's HTTP server clears the socket's timeout when a request
 * follows a keep-alive one, so the idle limit (`idle_timeout`) was gone for whatever the
 * connection became: an idle tunnel or session lived as long as its client wanted, holding its
 * tunnel slot. Each now closes when idle like one opened on a fresh connection, with its record.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { agentToken, startTurret, until, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { basicAuth, connectProxy, readResponse } from '../helpers/raw-proxy.js';
import { LOOPBACK } from '../helpers/rules.js';
import { echo, startUpstream, type Upstream } from '../helpers/upstream.js';
import { countedServer, streamBytes, type CountedServer } from '../helpers/counted-server.js';
import { acceptKey } from '../helpers/ws-wire.js';

const BIG = 64 * 1024 * 1024;

let t: TurretProc;
let plain: Upstream;
let secure: Upstream;
let ws: CountedServer;
let auth = '';

before(async () => {
  plain = await startUpstream({ tls: false });
  // /paused: 5 of 10 body bytes, then nothing; /big: 64 MiB as fast as the reader takes it.
  secure = await startUpstream({
    handler: (req, res, body) => {
      if (req.url === '/paused') return void res.writeHead(200, { 'content-length': '10' }).write('01234');
      if (req.url !== '/big') return echo(req, res, body);
      res.writeHead(200, { 'content-length': String(BIG) });
      streamBytes(res, BIG);
    },
  });
  ws = await countedServer((s) =>
    s.once('data', (c: Buffer) => {
      const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(c.toString('latin1'))?.[1] ?? '';
      s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`);
    }),
  );
  t = await startTurret({
    rules: {
      'r.yaml': {
        agents: ['a'],
        rules: [{ name: 'r', methods: ['read', 'websocket'], schemes: ['http', 'https'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
        local: ['up.turret.test'],
      },
    },
    args: ['--limit', 'idle_timeout=1s'],
  });
  auth = basicAuth('a', await agentToken(t, 'a'));
});
after(async () => {
  await t?.stop();
  await plain.close();
  await secure.close();
  ws.server.close();
});

/** A proxy connection that has carried one keep-alive GET. */
async function reused(): Promise<net.Socket> {
  const s = await connectProxy(t.port);
  s.on('error', () => undefined);
  const r = readResponse(s);
  s.write(`GET http://up.turret.test:${plain.port}/first HTTP/1.1\r\nHost: up.turret.test:${plain.port}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
  assert.equal((await r).status, 200);
  return s;
}

it('an intercepted tunnel opened after a keep-alive request closes when idle; tunnel_open and tunnel_close recorded', async () => {
  const ts = await tunnelOn(await reused());
  await until(() => ts.closed, 'the idle tunnel to close');
  const close = await waitForAudit(t, (x) => x.event === 'tunnel_close' && x.port === secure.port);
  assert.ok(close, 'the tunnel has its tunnel_close record');
  assert.equal(t.audit().filter((x) => x.event === 'tunnel_open' && x.port === secure.port).length, 1);
});

it('a WebSocket session opened after a keep-alive request closes when idle; one record', async () => {
  const s = await reused();
  let got = '';
  s.on('data', (c: Buffer) => (got += c.toString('latin1')));
  s.write(
    `GET http://up.turret.test:${ws.port}/idle-ws HTTP/1.1\r\nHost: up.turret.test:${ws.port}\r\nProxy-Authorization: ${auth}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  await until(
    () => got.includes('101 Switching Protocols'),
    () => `the 101: ${JSON.stringify(got)}`,
  );
  await until(() => s.closed, 'the idle session to close');
  await waitForAudit(t, (x) => x.event === 'request' && x.path === '/idle-ws');
  assert.equal(t.audit().filter((x) => x.event === 'request' && x.path === '/idle-ws').length, 1);
});

/** An intercepted tunnel on a fresh proxy connection, TLS up, `p` requested inside it. */
async function insideTunnel(p: string): Promise<tls.TLSSocket> {
  const s = await connectProxy(t.port);
  s.on('error', () => undefined);
  const ts = await tunnelOn(s);
  ts.write(`GET ${p} HTTP/1.1\r\nHost: up.turret.test:${secure.port}\r\n\r\n`);
  return ts;
}

/** CONNECT to the TLS upstream on proxy connection `s`, then TLS through it (Turret's CA). */
async function tunnelOn(s: net.Socket): Promise<tls.TLSSocket> {
  const r = readResponse(s, { connect: true });
  s.write(`CONNECT up.turret.test:${secure.port} HTTP/1.1\r\nHost: up.turret.test:${secure.port}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
  assert.equal((await r).status, 200);
  const ts = tls.connect({ socket: s, servername: 'up.turret.test', ca: readFileSync(path.join(t.caDir, 'ca.crt')) });
  ts.on('error', () => undefined);
  await once(ts, 'secureConnect');
  return ts;
}

it("inside an intercepted tunnel, an upstream that pauses its body longer than idle_timeout: the request is recorded as the upstream's wait, not the client's close", async () => {
  const ts = await insideTunnel('/paused');
  ts.resume();
  const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/paused', 15_000);
  assert.equal(rec?.code, 'upstream_timeout', JSON.stringify(rec));
  assert.match(String(rec?.reason), /nothing came from the upstream, nor from the client, for 1s \(idle_timeout\)/);
  await until(() => ts.closed, 'the tunnel closed');
  assert.equal(t.audit().filter((x) => x.event === 'request' && x.path === '/paused').length, 1);
});

it("inside an intercepted tunnel, a client that stops reading its response: recorded as the client's timeout", async () => {
  const ts = await insideTunnel('/big');
  ts.pause();
  const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/big', 15_000);
  assert.equal(rec?.code, 'client_timeout', JSON.stringify(rec));
  assert.match(String(rec?.reason), /the client read nothing of the response for 1s \(idle_timeout\)/);
  assert.equal(t.audit().filter((x) => x.event === 'request' && x.path === '/big').length, 1);
  ts.destroy();
});
