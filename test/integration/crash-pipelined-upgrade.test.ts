/**
 * A WebSocket upgrade or a CONNECT pipelined behind a request whose response is still being sent
 * (attack review, crashrev2). Node hands the socket over as soon as the upgrade's head is parsed,
 * so Turret's answer to it (a 101, a refusal, a CONNECT 200) was written into the middle of the
 * earlier response: the client read a refusal as the answer to its GET, or a 101 inside a body.
 * Now the answer waits for the responses ahead of it; every exchange has one record.
 *
 * The upstream holds the GET's body half sent. Before releasing it, the test waits for whichever
 * comes first: Turret's debug line saying the upgrade waits, or the upgrade's answer reaching the
 * client (what the proxy did before).
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { agentToken, startTurret, until, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { basicAuth } from '../helpers/raw-proxy.js';
import { plainWsRules } from '../helpers/rules.js';
import { countedServer, type CountedServer } from '../helpers/counted-server.js';
import { acceptKey, frame, frames, proxiedGet, proxiedUpgrade } from '../helpers/ws-wire.js';

const WAITS = /waits for the responses ahead of it on its connection/g;
const BODY = '0123456789';

let t: TurretProc;
let auth = '';
let upstream: CountedServer;
let upPort = 0;
/** Request lines the upstream read. */
const heads: string[] = [];
/** Upstream sockets holding the second half of a /slow body. */
const held: net.Socket[] = [];

before(async () => {
  upstream = await countedServer((s) => {
    let head = '';
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      heads.push(head.split('\r\n')[0] ?? '');
      if (/^GET \/slow/.test(head)) {
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY.slice(0, 5)}`);
        held.push(s);
        return;
      }
      const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(head)?.[1] ?? '';
      s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`);
      s.write(frame(1, 'hello from upstream'));
    };
    s.on('data', onData);
  });
  upPort = upstream.port;
  t = await startTurret({
    rules: { 'r.yaml': plainWsRules(['ws.turret.test', 'denied.turret.test']) },
    env: { TURRET_LOG_LEVEL: 'debug' },
  });
  auth = basicAuth('a', await agentToken(t, 'a'));
});
after(async () => {
  await t?.stop();
  upstream.server.close();
});

function slowGet(path: string): string {
  return proxiedGet(`ws.turret.test:${upPort}`, path, auth);
}

function upgrade(host: string, path: string): string {
  return proxiedUpgrade(`${host}:${upPort}`, path, auth);
}

/**
 * Sends the slow GET and `second` in one write; once the upstream holds the GET's body, waits for
 * Turret's wait line or for `early` in what the client read; then releases the body. Returns the
 * client socket and what it has read so far (a getter).
 */
async function pipelined(slowPath: string, second: string, early: RegExp): Promise<{ s: net.Socket; got: () => string }> {
  const logFrom = (t.stderr().match(WAITS) ?? []).length;
  const s = net.connect(t.port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  let got = '';
  s.on('data', (c: Buffer) => (got += c.toString('latin1')));
  s.write(slowGet(slowPath) + second);
  await until(() => held.length > 0, 'the GET at the upstream');
  await until(
    () => (t.stderr().match(WAITS) ?? []).length > logFrom || early.test(got),
    () => `Turret waiting, or the answer at the client: ${JSON.stringify(got)}`,
  );
  return { s, got: () => got };
}

/** What the client read, as the GET's whole response and what follows it. */
function split(got: string): { first: string; body: string; rest: string } {
  const end = got.indexOf('\r\n\r\n');
  assert.ok(end > 0, JSON.stringify(got));
  const first = got.slice(0, end);
  return { first, body: got.slice(end + 4, end + 4 + BODY.length), rest: got.slice(end + 4 + BODY.length) };
}

/** Releases the GET's body; the client reads its whole response, then a 403, then the close. */
async function refusedAfterGet(s: net.Socket, got: () => string): Promise<void> {
  held.shift()?.end(BODY.slice(5));
  await until(
    () => s.closed,
    () => `the connection closed: ${JSON.stringify(got())}`,
  );
  const { first, body, rest } = split(got());
  assert.match(first, /^HTTP\/1\.1 200 /);
  assert.equal(body, BODY, JSON.stringify(got()));
  assert.match(rest, /^HTTP\/1\.1 403 /);
}

function recordsFor(path: string): Array<Record<string, unknown>> {
  return t.audit().filter((r) => r.event === 'request' && r.path === path);
}

it('a WebSocket upgrade pipelined behind a GET whose body is still coming: the 101 follows the whole response, then the session runs', async () => {
  const { s, got } = await pipelined('/slow0', upgrade('ws.turret.test', '/ws-101'), /HTTP\/1\.1 101/);
  held.shift()?.end(BODY.slice(5));
  await until(
    () =>
      /\r\n\r\n/.test(got().slice(got().indexOf('HTTP/1.1 101'))) &&
      frames(Buffer.from(split(got()).rest.slice(split(got()).rest.indexOf('\r\n\r\n') + 4), 'latin1')).frames.length > 0,
    () => `the 101 and a frame after the GET's response: ${JSON.stringify(got())}`,
  );
  const { first, body, rest } = split(got());
  assert.match(first, /^HTTP\/1\.1 200 /);
  assert.equal(body, BODY, JSON.stringify(got()));
  assert.match(rest, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  const f = frames(Buffer.from(rest.slice(rest.indexOf('\r\n\r\n') + 4), 'latin1')).frames[0];
  assert.equal(f?.payload.toString(), 'hello from upstream');
  s.end(frame(8, Buffer.from([0x03, 0xe8]), { mask: true }));
  await until(
    () => s.closed,
    () => `the connection closed: ${JSON.stringify(got())}`,
  );
  const ws = await waitForAudit(t, (r) => r.event === 'request' && r.path === '/ws-101');
  assert.equal(ws?.status, 101, JSON.stringify(ws));
  const slow = await waitForAudit(t, (r) => r.event === 'request' && r.path === '/slow0');
  assert.equal(slow?.status, 200, JSON.stringify(slow));
  assert.equal(recordsFor('/ws-101').length, 1);
  assert.equal(recordsFor('/slow0').length, 1);
});

it('a refused WebSocket upgrade pipelined behind a GET: the 403 follows the whole response, one record each', async () => {
  const { s, got } = await pipelined('/slow1', upgrade('denied.turret.test', '/ws-denied'), /HTTP\/1\.1 403/);
  await refusedAfterGet(s, got);
  const ws = await waitForAudit(t, (r) => r.event === 'request' && r.path === '/ws-denied');
  assert.equal(ws?.code, 'policy_denied', JSON.stringify(ws));
  await waitForAudit(t, (r) => r.event === 'request' && r.path === '/slow1');
  assert.equal(recordsFor('/ws-denied').length, 1);
  assert.equal(recordsFor('/slow1').length, 1);
});

it('a CONNECT pipelined behind a GET: its refusal follows the whole response, one record each', async () => {
  const connect = `CONNECT denied.turret.test:443 HTTP/1.1\r\nHost: denied.turret.test:443\r\nProxy-Authorization: ${auth}\r\n\r\n`;
  const { s, got } = await pipelined('/slow2', connect, /HTTP\/1\.1 403/);
  await refusedAfterGet(s, got);
  const open = await waitForAudit(t, (r) => r.event === 'tunnel_open' && r.host === 'denied.turret.test');
  assert.equal(open?.code, 'policy_denied', JSON.stringify(open));
  assert.equal(t.audit().filter((r) => r.event === 'tunnel_open' && r.host === 'denied.turret.test').length, 1);
  await waitForAudit(t, (r) => r.event === 'request' && r.path === '/slow2');
  assert.equal(recordsFor('/slow2').length, 1);
});

it('a client that resets while its pipelined upgrade waits: one client_closed record for each exchange, nothing sent upstream for the upgrade', async () => {
  const { s } = await pipelined('/slow3', upgrade('ws.turret.test', '/ws-reset'), /HTTP\/1\.1 101/);
  s.resetAndDestroy();
  const ws = await waitForAudit(t, (r) => r.event === 'request' && r.path === '/ws-reset');
  assert.equal(ws?.code, 'client_closed', JSON.stringify(t.audit().slice(-3)) + t.stderr().slice(-3000));
  const slow = await waitForAudit(t, (r) => r.event === 'request' && r.path === '/slow3');
  assert.equal(slow?.code, 'client_closed', JSON.stringify(slow));
  held.shift()?.destroy();
  assert.deepEqual(
    heads.filter((h) => h.includes('/ws-reset')),
    [],
    'nothing of the upgrade reached the upstream',
  );
  assert.equal(recordsFor('/ws-reset').length, 1);
  assert.equal(recordsFor('/slow3').length, 1);
  assert.equal(t.proc.exitCode, null);
});
