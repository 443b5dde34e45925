/**
 * What leaves the HTTP/1.1 framing of a decrypted connection inside an intercepted tunnel, and its
 * end: a WebSocket upgrade pipelined behind a GET (the GET's answer first, then the 101, then
 * frames both ways; the upstream is not asked before the GET is answered), a CONNECT pipelined
 * behind a GET (the GET's answer, then 403 method_forbidden, then the close), and a graceful
 * shutdown (SIGTERM) with a keep-alive connection idle in one tunnel and a request under way in
 * another: the idle one is closed at once without a byte, the one under way gets its answer and
 * then the close, every exchange has one record and Turret exits 0. Raw TLS client inside
 * CONNECT, real turret, scripted upstream (test/helpers/client-h1.ts).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startH1Proxy, useH1 } from '../helpers/h1-proxy.js';
import { header, type WireMessage } from '../helpers/http-wire.js';
import { pathOf, startH1Upstream, type H1Conn } from '../helpers/h1-upstream.js';
import { acceptKey, frame, frames } from '../helpers/ws-wire.js';
import { until } from '../helpers/turret.js';
import { awaitResponses, byPath, Gates, openTunnel, recordsOf, request, responsesTo } from '../helpers/client-h1.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const WAITS = /waits for the responses ahead of it on its connection/g;
const UPGRADE = `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n`;

describe('a WebSocket upgrade and a CONNECT pipelined behind a GET inside an intercepted tunnel', () => {
  const h = useH1({ env: { TURRET_LOG_LEVEL: 'debug' } });
  let port = 0;
  const gates = new Gates();
  const seen: WireMessage[] = [];
  const plain = byPath(gates, seen);
  /** The upstream's WebSocket side: 101, a text frame, then it echoes the first client frame's text and closes. */
  const ws = async (c: H1Conn, m: WireMessage): Promise<void> => {
    seen.push(m);
    await c.send(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(KEY)}\r\n\r\n`, frame(1, 'hello-from-up'));
    const got = await waitFrames(c);
    await c.send(frame(1, `echo:${got}`), frame(8, Buffer.from([3, 232])));
    c.end();
  };
  before(async () => {
    port = (
      await h.ups.start(async (c) => {
        const m = await c.request(0);
        if (pathOf(m).startsWith('/ws/')) return ws(c, m);
        return plain(c);
      })
    ).tlsPort;
  });

  /** The first frame the upstream received after the handshake, as text. */
  async function waitFrames(c: H1Conn): Promise<string> {
    let text: string | null = null;
    await until(() => {
      const rest = c.data.subarray(c.data.indexOf('\r\n\r\n') + 4);
      const f = frames(rest).frames[0];
      text = f ? f.payload.toString() : null;
      return text !== null;
    }, 'a client frame at the upstream');
    return text ?? '';
  }

  it('WebSocket behind a slow GET: nothing before the GET’s answer, the upstream asked only after it, then 101 and frames both ways', async () => {
    const t = await openTunnel(h.px, port);
    const logFrom = (h.px.t.stderr().match(WAITS) ?? []).length;
    t.write(Buffer.concat([request(port, 'GET', '/slow/wsp-1'), request(port, 'GET', '/ws/wsp-2', { headers: UPGRADE })]));
    await until(() => gates.holds('/slow/wsp-1') && (h.px.t.stderr().match(WAITS) ?? []).length > logFrom, 'the GET at the upstream and the upgrade waiting');
    assert.equal(t.got().length, 0, 'no byte before the GET’s answer');
    assert.deepEqual(
      seen.map(pathOf).filter((p) => p.includes('wsp')),
      ['/slow/wsp-1'],
      'the upgrade is not sent upstream before the GET is answered',
    );
    gates.release('/slow/wsp-1');
    await t.until((b) => b.includes('hello-from-up'), 'the upstream’s first frame');
    const r = responsesTo(t.got(), ['GET', 'GET'], false);
    assert.deepEqual(
      r.responses.map((m) => [m.status, m.body.toString()]),
      [
        [200, 'own:/slow/wsp-1'],
        [101, ''],
      ],
    );
    assert.deepEqual(header(r.responses[1]!, 'sec-websocket-accept'), [acceptKey(KEY)]);
    assert.deepEqual(
      frames(r.rest).frames.map((f) => [f.opcode, f.payload.toString()]),
      [[1, 'hello-from-up']],
    );
    t.write(frame(1, 'hi-from-client', { mask: true }));
    await t.until((b) => b.includes('echo:hi-from-client'), 'the echo');
    t.write(frame(8, Buffer.from([3, 232]), { mask: true }));
    await t.done();
    const recs = await recordsOf(h.px, t, 2);
    assert.deepEqual(
      recs.map((x) => [x.path, x.status, x.code]),
      [
        ['/slow/wsp-1', 200, undefined],
        ['/ws/wsp-2', 101, undefined],
      ],
    );
  });

  it('CONNECT behind a slow GET: nothing before the GET’s answer, then 403 method_forbidden written raw, then the close; one record each', async () => {
    const t = await openTunnel(h.px, port);
    const logFrom = (h.px.t.stderr().match(WAITS) ?? []).length;
    t.write(Buffer.concat([request(port, 'GET', '/slow/cnp-1'), Buffer.from('CONNECT other.turret.test:443 HTTP/1.1\r\nHost: other.turret.test:443\r\n\r\n')]));
    await until(() => gates.holds('/slow/cnp-1') && (h.px.t.stderr().match(WAITS) ?? []).length > logFrom, 'the GET at the upstream and the CONNECT waiting');
    assert.equal(t.got().length, 0, 'the refusal is not written into the GET’s answer');
    gates.release('/slow/cnp-1');
    const r = responsesTo(await t.done(), ['GET', 'CONNECT'], true);
    assert.equal(r.problem, null);
    assert.equal(r.rest.length, 0);
    assert.deepEqual(
      r.responses.map((m) => [m.status, header(m, 'x-turret-error')[0], header(m, 'connection')[0]]),
      [
        [200, undefined, 'keep-alive'],
        [403, 'method_forbidden', 'close'],
      ],
    );
    const recs = await recordsOf(h.px, t, 2);
    assert.deepEqual(recs.map((x) => [x.method, x.status, x.code]).sort(), [
      ['CONNECT', 403, 'method_forbidden'],
      ['GET', 200, undefined],
    ]);
  });

  it('no upstream script failed', () => {
    assert.deepEqual(h.ups.errors(), []);
  });
});

describe('graceful shutdown with intercepted tunnels', () => {
  it('SIGTERM: an idle keep-alive connection closes at once without a byte; a request under way gets its answer, then the close; one record each; exit 0', async () => {
    const gates = new Gates();
    const up = await startH1Upstream(byPath(gates));
    const px = await startH1Proxy({ args: ['--drain-timeout', '20s'] });
    try {
      const port = up.tlsPort;
      const idle = await openTunnel(px, port);
      idle.write(request(port, 'GET', '/cl/dr-idle'));
      await awaitResponses(idle, ['GET']);
      const idleBytes = idle.got().length;
      const busy = await openTunnel(px, port);
      busy.write(request(port, 'GET', '/slow/dr-busy'));
      await until(() => gates.holds('/slow/dr-busy'), 'the request under way at the upstream');
      const exited = new Promise<number | null>((resolve) => px.t.proc.once('exit', (code) => resolve(code)));
      px.t.proc.kill('SIGTERM');
      await idle.done();
      assert.equal(idle.got().length, idleBytes, 'nothing written to the idle connection at shutdown');
      assert.equal(busy.closed(), false, 'the connection with a request under way stays');
      gates.release('/slow/dr-busy');
      const r = responsesTo(await busy.done(), ['GET'], true);
      assert.equal(r.problem, null);
      assert.equal(r.rest.length, 0);
      assert.equal(r.responses[0]?.body.toString(), 'own:/slow/dr-busy');
      // Begun before the signal, answered during the drain: it says close (drain.ts `unanswered`;
      // it said keep-alive before srvfix).
      assert.deepEqual(header(r.responses[0]!, 'connection'), ['close']);
      assert.equal(await exited, 0);
      for (const p of ['/cl/dr-idle', '/slow/dr-busy']) {
        const recs = px.records(p);
        assert.deepEqual(
          recs.map((x) => [x.status, x.outcome, x.code]),
          [[200, 'completed', undefined]],
          p,
        );
      }
      assert.deepEqual(
        px.t.audit().filter((x) => x.event === 'request' && x.code !== undefined),
        [],
        'no refusal, no timeout record',
      );
    } finally {
      await px.stop();
      await up.close();
    }
  });
});
