/**
 * A WebSocket client that goes away while its upgrade waits for the upstream (attack review of
 * the promises nobody awaits). handleUpgrade (websocket.ts, not awaited by
 * server.ts) waits for the upstream's handshake answer; a client that reset meanwhile had already
 * closed when the session's listeners were attached, so the upstream connection was held open
 * for nobody and the record said the session completed. The upstream here answers only once the
 * client has gone.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { agentToken, startTurret, until, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { basicAuth } from '../helpers/raw-proxy.js';
import { adminPort, httpGet } from '../helpers/ops.js';
import { plainWsRules } from '../helpers/rules.js';
import { countedServer, type CountedServer } from '../helpers/counted-server.js';
import { acceptKey } from '../helpers/ws-wire.js';

let t: TurretProc;
let auth = '';
let upstream: CountedServer;
let upPort = 0;
/** Upstream connections with a handshake waiting for its answer (upstream.open(): how many are still open). */
const waiting: Array<{ s: net.Socket; key: string }> = [];

before(async () => {
  upstream = await countedServer((s) => {
    let head = '';
    s.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      if (head.includes('\r\n\r\n')) waiting.push({ s, key: /\r\nsec-websocket-key: *([^\r]+)/i.exec(head)?.[1] ?? '' });
    });
  });
  upPort = upstream.port;
  t = await startTurret({
    rules: { 'r.yaml': plainWsRules() },
  });
  auth = basicAuth('a', await agentToken(t, 'a'));
});
after(async () => {
  await t?.stop();
  upstream.server.close();
});

for (const answer of ['101', '403'] as const) {
  it(`a client that resets before the upstream answers its upgrade (${answer}): one record naming client_closed, the upstream connection closed`, async () => {
    const path = `/reset-${answer}`;
    const s = net.connect(t.port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    s.write(
      `GET http://ws.turret.test:${upPort}${path} HTTP/1.1\r\nHost: ws.turret.test:${upPort}\r\nProxy-Authorization: ${auth}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await until(() => waiting.length === 1, 'the handshake at the upstream');
    s.resetAndDestroy();
    await once(s, 'close');
    // A round trip through the proxy's event loop: it has seen the reset before the answer comes.
    assert.equal((await httpGet(adminPort(t), '/healthz')).status, 200);
    const w = waiting.shift();
    assert.ok(w);
    w.s.write(
      answer === '101'
        ? `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(w.key)}\r\n\r\n`
        : 'HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno',
    );
    const rec = await waitForAudit(t, (r) => r.event === 'request' && r.path === path);
    assert.equal(rec?.code, 'client_closed', JSON.stringify(rec));
    assert.equal(rec?.outcome, 'aborted');
    assert.equal(t.audit().filter((r) => r.event === 'request' && r.path === path).length, 1);
    await until(
      () => upstream.open() === 0,
      () => `${upstream.open()} upstream connection(s) still open`,
    );
    assert.equal(t.proc.exitCode, null);
  });
}
