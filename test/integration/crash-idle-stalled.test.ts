/**
 * A client that stops reading a response on a connection that already carried a keep-alive
 * request (attack review of crashrev2's idle fixes, crashrev3). Node's HTTP server clears the
 * socket's timeout when a request follows a keep-alive one: the response then stalled with no idle
 * limit (until request_timeout, 15 minutes by default, none with 0), holding the upstream's
 * connection, and so did an upgrade or CONNECT pipelined behind it (connection.ts afterEarlier).
 * On a fresh connection the same client is closed after idle_timeout. And what the record of an
 * exchange cut by idle_timeout names: it said client_closed ("the client closed the connection")
 * when Turret closed it, also when the silence was the upstream's.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { agentToken, startTurret, until, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { basicAuth, readResponse } from '../helpers/raw-proxy.js';
import { plainWsRules } from '../helpers/rules.js';
import { countedServer, readHead, streamBytes, type CountedServer } from '../helpers/counted-server.js';
import { proxiedGet, proxiedUpgrade, switching } from '../helpers/ws-wire.js';

const BIG = 64 * 1024 * 1024;

let t: TurretProc;
let auth = '';
let upstream: CountedServer;
/** Request lines the upstream read. */
const heads: string[] = [];

before(async () => {
  upstream = await countedServer((s) =>
    readHead(s, (head) => {
      heads.push(head.split('\r\n')[0] ?? '');
      if (/^GET \/small/.test(head)) return void s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      if (/^GET \/paused/.test(head)) return void s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234');
      if (!/^GET \/big/.test(head)) return void s.write(switching(head));
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BIG}\r\n\r\n`);
      streamBytes(s, BIG);
    }),
  );
  t = await startTurret({ rules: { 'r.yaml': plainWsRules() }, args: ['--limit', 'idle_timeout=1s'] });
  auth = basicAuth('a', await agentToken(t, 'a'));
});
after(() => Promise.all([t?.stop(), new Promise((r) => upstream.server.close(r))]));

/** A proxy connection that has carried one keep-alive GET, then sent `next` and stopped reading. */
async function stalled(next: string): Promise<net.Socket> {
  const s = net.connect(t.port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  const r = readResponse(s);
  s.write(proxiedGet(`ws.turret.test:${upstream.port}`, '/small', auth));
  assert.equal((await r).status, 200);
  s.pause();
  s.write(next);
  return s;
}

function big(path: string): string {
  return proxiedGet(`ws.turret.test:${upstream.port}`, path, auth);
}

it('a client that stops reading a response on a reused connection: closed when idle, the exchange recorded', async () => {
  const s = await stalled(big('/big-stalled'));
  const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/big-stalled', 15_000);
  assert.equal(rec?.code, 'client_timeout', JSON.stringify(rec));
  assert.match(String(rec?.reason), /the client read nothing of the response for 1s \(idle_timeout\)/);
  s.destroy();
});

it('an upgrade pipelined behind that response: it waits, the connection closes when idle, one record each (the GET client_timeout, the upgrade client_closed), nothing of the upgrade upstream', async () => {
  const from = heads.length;
  const s = await stalled(big('/big-stalled-ws') + proxiedUpgrade(`ws.turret.test:${upstream.port}`, '/ws-stalled', auth));
  const ws = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/ws-stalled', 15_000);
  assert.equal(ws?.code, 'client_closed', JSON.stringify(ws));
  const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/big-stalled-ws');
  assert.equal(rec?.code, 'client_timeout', JSON.stringify(rec));
  assert.deepEqual(heads.slice(from), ['GET /small HTTP/1.1', 'GET /big-stalled-ws HTTP/1.1'], 'nothing of the upgrade reached the upstream');
  assert.equal(t.audit().filter((x) => x.path === '/ws-stalled').length, 1);
  s.destroy();
});

it("an upstream that pauses its body longer than idle_timeout: the exchange is recorded as the upstream's wait, not the client's close", async () => {
  const s = net.connect(t.port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  s.resume();
  s.write(proxiedGet(`ws.turret.test:${upstream.port}`, '/paused', auth));
  const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/paused', 15_000);
  assert.equal(rec?.outcome, 'failed', JSON.stringify(rec));
  assert.equal(rec?.code, 'upstream_timeout', JSON.stringify(rec));
  assert.match(String(rec?.reason), /nothing came from the upstream, nor from the client, for 1s \(idle_timeout\)/);
  await until(() => s.closed, 'the connection closed');
});
