/**
 * Request bodies on the decrypted connection of an intercepted tunnel, as a raw client sends them:
 * `Expect: 100-continue` (what the client sees, and when), a body larger than every socket buffer
 * to an upstream that reads slowly (backpressure end to end: the proxy holds a bounded amount,
 * the body arrives whole), and a client that half-closes (TLS close_notify and FIN) in the head,
 * in the body, or after a complete request: what it gets, and its one record. Raw TLS client
 * inside CONNECT, real turret, scripted upstream (test/helpers/client-h1.ts).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { useH1 } from '../helpers/h1-proxy.js';
import { header, type WireMessage } from '../helpers/http-wire.js';
import { ok, pathOf, type H1Conn } from '../helpers/h1-upstream.js';
import { awaitResponses, byPath, Gates, openTunnel, recordsOf, request, responsesTo } from '../helpers/client-h1.js';

const MiB = 1024 * 1024;
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

describe('request bodies inside an intercepted tunnel', () => {
  const h = useH1();
  let port = 0;
  const seen: WireMessage[] = [];
  const gates = new Gates();
  before(async () => {
    port = (await h.ups.start(byPath(gates, seen))).tlsPort;
  });

  it('Expect: 100-continue: the client gets exactly a 100 before it sends the body, then the answer; the upstream never sees Expect', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'POST', '/echo/ex-1', { headers: 'Expect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n' }));
    await t.until((b) => b.length >= CONTINUE.length, 'the 100 Continue');
    assert.equal(t.got().toString('latin1'), CONTINUE, 'a bare 100, nothing else before the body');
    t.write('hello');
    const r = responsesTo(await t.done(), ['POST'], true);
    assert.equal(r.problem, null);
    assert.deepEqual(
      r.responses.map((m) => [m.status, m.body.toString()]),
      [
        [100, ''],
        [200, 'POST /echo/ex-1 hello'],
      ],
    );
    const [rec] = await recordsOf(h.px, t);
    assert.deepEqual([rec?.path, rec?.status, rec?.bytes_in, rec?.code], ['/echo/ex-1', 200, 5, undefined]);
    const up = seen.find((m) => pathOf(m) === '/echo/ex-1');
    assert.deepEqual(header(up!, 'expect'), []);
  });

  it('Expect: 100-continue with the body sent at once: one 100, then the answer', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'PUT', '/echo/ex-2', { headers: 'Expect: 100-continue\r\nConnection: close\r\n', body: 'at once' }));
    const r = responsesTo(await t.done(), ['PUT'], true);
    assert.equal(r.problem, null);
    assert.deepEqual(
      r.responses.map((m) => [m.status, m.body.toString()]),
      [
        [100, ''],
        [200, 'PUT /echo/ex-2 at once'],
      ],
    );
    await recordsOf(h.px, t);
  });

  it('Expect: 100-continue on a request Turret refuses: the 100 still comes first (node:http sends it with the head), then the refusal and the close', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'POST', '/echo/ex-3', { host: `other.turret.test:${port}`, headers: 'Expect: 100-continue\r\nContent-Length: 5\r\n' }));
    const r = responsesTo(await t.done(), ['POST'], true);
    assert.equal(r.problem, null);
    assert.deepEqual(
      r.responses.map((m) => [m.status, header(m, 'x-turret-error')[0]]),
      [
        [100, undefined],
        [421, 'misdirected_request'],
      ],
    );
    const [rec] = await recordsOf(h.px, t);
    assert.deepEqual([rec?.status, rec?.code], [421, 'misdirected_request']);
  });

  it('a 64 MiB body to an upstream that reads only while the client is blocked: the proxy holds a bounded amount; the body arrives whole', async () => {
    const TOTAL = 64 * MiB;
    let conn: H1Conn | undefined;
    const up = await h.ups.start(async (c) => {
      conn = c;
      c.socket.pause();
      const req = await c.request(0);
      await c.send(ok(`got ${req.body.length}`));
    });
    const t = await openTunnel(h.px, up.tlsPort);
    t.write(request(up.tlsPort, 'POST', '/big-upload', { headers: `Content-Length: ${TOTAL}\r\nConnection: close\r\n` }));
    const chunk = Buffer.alloc(256 * 1024);
    const hash = createHash('sha256');
    let written = 0;
    let maxGap = 0;
    let blocks = 0;
    const gap = (): number => written - t.s.writableLength - (conn ? conn.firstBodyBytes() : 0);
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        conn?.socket.pause();
        for (let i = 0; written < TOTAL && i < 10_000; i++) {
          chunk.fill(written / chunk.length);
          hash.update(chunk);
          written += chunk.length;
          if (!t.s.write(chunk)) {
            blocks++;
            maxGap = Math.max(maxGap, gap());
            conn?.socket.resume();
            t.s.once('drain', pump);
            return;
          }
        }
        maxGap = Math.max(maxGap, gap());
        conn?.socket.resume();
        resolve();
      };
      pump();
    });
    const r = responsesTo(await t.done(30_000), ['POST'], true);
    // Between the client and the upstream: the kernel's buffers of four sockets and the streams'
    // own (a proxy that held the upload would show nearly all of it).
    assert.ok(maxGap < 48 * MiB, `the proxy held ${(maxGap / MiB).toFixed(1)} MiB of the upload (${blocks} blocks)`);
    assert.equal(r.responses[0]?.body.toString(), `got ${TOTAL}`);
    const received = conn!.requests[0]!.body;
    assert.equal(createHash('sha256').update(received).digest('hex'), hash.digest('hex'), 'the body arrived unchanged');
    const [rec] = await recordsOf(h.px, t);
    assert.deepEqual([rec?.status, rec?.bytes_in], [200, TOTAL]);
  });

  it('a half-close (close_notify, FIN) after a complete request: the exchange ends client_closed, no answer is ever written', async () => {
    const t = await openTunnel(h.px, port, { allowHalfOpen: true });
    t.write(request(port, 'GET', '/slow/hc-1'));
    t.s.end();
    // The upstream holds its answer until the exchange has ended: the half-close alone ended it.
    const [rec] = await recordsOf(h.px, t);
    assert.deepEqual(
      [rec?.path, rec?.status, rec?.code, rec?.outcome, rec?.reason],
      ['/slow/hc-1', 499, 'client_closed', 'aborted', 'the client closed the connection while waiting for the response'],
    );
    gates.release('/slow/hc-1');
    assert.equal((await t.done()).length, 0, 'nothing written');
    assert.equal(h.px.records('/slow/hc-1').length, 1);
  });

  it('a half-close in the middle of a body: no answer, one client_closed record for the request', async () => {
    const t = await openTunnel(h.px, port, { allowHalfOpen: true });
    t.write(request(port, 'POST', '/echo/hc-2', { headers: 'Content-Length: 10\r\n', body: 'abc' }));
    t.s.end();
    assert.equal((await t.done()).length, 0, 'nothing written');
    const [rec] = await recordsOf(h.px, t);
    assert.deepEqual(
      [rec?.path, rec?.status, rec?.code, rec?.outcome, rec?.reason],
      ['/echo/hc-2', 499, 'client_closed', 'aborted', 'the client closed the connection before sending the whole request'],
    );
    assert.equal(seen.filter((m) => pathOf(m) === '/echo/hc-2').length, 0, 'no complete request at the upstream');
  });

  it('a half-close in the middle of a head: no answer, one client_closed record without a path', async () => {
    const t = await openTunnel(h.px, port, { allowHalfOpen: true });
    t.write('GET /cl/hc-3 HTTP/1.1\r\nHost: up.tur');
    t.s.end();
    assert.equal((await t.done()).length, 0, 'nothing written');
    const [rec] = await recordsOf(h.px, t);
    assert.deepEqual(
      [rec?.path, rec?.status, rec?.code, rec?.outcome, rec?.reason],
      [undefined, 499, 'client_closed', 'aborted', 'the client closed the connection before sending a whole request head'],
    );
    assert.equal(typeof rec?.tunnel_id, 'string');
  });

  it('keep-alive after a body: a POST with a body, then a GET on the same connection, each answered once', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'POST', '/echo/kb-1', { body: 'x'.repeat(70_000) }));
    const [a] = await awaitResponses(t, ['POST']);
    assert.equal(a?.body.length, 'POST /echo/kb-1 '.length + 70_000);
    t.write(request(port, 'GET', '/cl/kb-2', { headers: 'Connection: close\r\n' }));
    const r = responsesTo(await t.done(), ['POST', 'GET'], true);
    assert.equal(r.responses[1]?.body.toString(), 'own:/cl/kb-2');
    const recs = await recordsOf(h.px, t, 2);
    assert.deepEqual(
      recs.map((x) => [x.path, x.bytes_in]),
      [
        ['/echo/kb-1', 70_000],
        ['/cl/kb-2', 0],
      ],
    );
  });

  it('no upstream script failed', () => {
    assert.deepEqual(h.ups.errors(), []);
  });
});
