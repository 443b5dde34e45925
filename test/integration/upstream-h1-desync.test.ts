/**
 * Response desync on pooled upstream connections: an upstream that answers one request twice,
 * writes bytes after a Content-Length body, writes a response on an idle kept-alive connection,
 * gives a body to HEAD, or puts a body on a 204 or 304. Each time the stray bytes must never
 * become another request's answer: the proxy closes that connection (the upstream sees it go —
 * the event each test waits for before the next request), the next request of the same agent to
 * the same origin gets its own answer from a new connection, nothing stray reaches any client, and
 * each exchange has exactly one record.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ok, pathOf, type H1Conn } from '../helpers/h1-upstream.js';
import { bodyOf, useH1 } from '../helpers/h1-proxy.js';

const STRAY = 'STRAY-BYTES-NOT-YOURS';
const STRAY_RESPONSE = `HTTP/1.1 200 OK\r\nContent-Length: ${STRAY.length}\r\nX-Stray: 1\r\n\r\n${STRAY}`;

/** What each first request of a case gets: the answer plus whatever it smuggles after it. */
const FIRST: Record<string, string> = {
  double: ok('first') + STRAY_RESPONSE,
  extra: `${ok('first')}${STRAY}`,
  'head-body': `HTTP/1.1 200 OK\r\nContent-Length: ${STRAY.length}\r\nX-Head: 1\r\n\r\n${STRAY}`,
  '204-body': `HTTP/1.1 204 No Content\r\nX-Empty: 1\r\n\r\n${STRAY_RESPONSE}`,
  '304-body': `HTTP/1.1 304 Not Modified\r\nETag: "e1"\r\nContent-Length: ${STRAY.length}\r\n\r\n${STRAY}`,
  '204-cl-body': `HTTP/1.1 204 No Content\r\nContent-Length: ${STRAY.length}\r\n\r\n${STRAY}`,
};

/** The idle case's two events: the client has its first answer; the stray bytes are written. */
const idle = { clientHasFirst: Promise.resolve(), gotFirst: () => {}, strayWritten: () => {} };

/** Every request gets its own answer naming its path, unless its case says otherwise. */
async function serve(c: H1Conn): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const req = await c.request(i);
    const p = pathOf(req);
    const kase = p.split('/')[2] ?? '';
    if (p.includes('/first') && FIRST[kase] !== undefined) {
      // One write: the stray bytes arrive with the answer, so the proxy reads them together.
      await c.send(FIRST[kase]);
    } else if (p.startsWith('/idle/first')) {
      await c.send(ok('first'));
      // Once the client has its answer, the connection is idle in the pool: then the stray bytes.
      await idle.clientHasFirst;
      await c.send(STRAY_RESPONSE);
      idle.strayWritten();
    } else {
      await c.send(ok(`own:${p}`));
    }
  }
}

describe('stray response bytes never answer another request', () => {
  const h = useH1();
  const fresh = (): ReturnType<typeof h.ups.start> => h.ups.start(serve);

  const cases: Array<{ kase: string; method: string; status: number; body: string; what: string }> = [
    { kase: 'double', method: 'GET', status: 200, body: 'first', what: 'two responses to one request' },
    { kase: 'extra', method: 'GET', status: 200, body: 'first', what: 'bytes after a Content-Length body' },
    { kase: 'head-body', method: 'HEAD', status: 200, body: '', what: 'a body sent to HEAD' },
    { kase: '204-body', method: 'GET', status: 204, body: '', what: 'a response after a 204' },
    { kase: '304-body', method: 'GET', status: 304, body: '', what: 'a body on a 304' },
    { kase: '204-cl-body', method: 'GET', status: 204, body: '', what: 'a 204 with Content-Length and a body' },
  ];

  for (const c of cases) {
    it(`${c.what}: the first client gets only its answer, the connection is closed, the next request gets its own`, async () => {
      const up = await fresh();
      const first = `/desync/${c.kase}/first`;
      const r1 = await h.px.send(up.port, first, { method: c.method });
      assert.equal(r1.parsed.problem, null, r1.raw.toString('latin1'));
      assert.equal(r1.final?.status, c.status, r1.raw.toString('latin1'));
      assert.equal(bodyOf(r1), c.body);
      assert.equal(r1.parsed.rest.length, 0, `nothing after the response: ${r1.raw.toString('latin1')}`);
      assert.ok(!r1.raw.toString('latin1').includes('STRAY'), `no stray byte reaches the first client: ${r1.raw.toString('latin1')}`);
      // The stray bytes came in the same write as the answer: the proxy has them now. The next
      // request, sent at once, must not get them, nor go on that connection.
      const second = `/desync/${c.kase}/second`;
      const r2 = await h.px.send(up.port, second);
      assert.equal(r2.final?.status, 200, r2.raw.toString('latin1'));
      assert.equal(bodyOf(r2), `own:${second}`);
      assert.equal(r2.parsed.rest.length, 0);
      assert.ok(!r2.raw.toString('latin1').includes('STRAY'));
      assert.equal(up.conns.length, 2, 'the second request came on a new connection');
      // The connection that carried stray bytes is closed by the proxy, never pooled.
      await up.conns[0]!.gone();
      assert.equal(up.conns[0]!.requests.length, 1, 'the connection carried one request');

      const rec1 = await h.px.record(first);
      assert.equal(rec1.status, c.status);
      assert.equal(rec1.outcome, 'completed');
      const rec2 = await h.px.record(second);
      assert.equal(rec2.status, 200);
      assert.equal(h.px.records(first).length, 1, 'one record for the first exchange');
      assert.equal(h.px.records(second).length, 1, 'one record for the second exchange');
    });
  }

  it('a response written on an idle pooled connection: the next request, sent at once, gets its own answer on a new connection', async () => {
    const up = await fresh();
    idle.clientHasFirst = new Promise((r) => (idle.gotFirst = r));
    const written = new Promise<void>((r) => (idle.strayWritten = r));
    const r1 = await h.px.send(up.port, '/idle/first');
    assert.equal(bodyOf(r1), 'first');
    idle.gotFirst();
    // The stray bytes are in the proxy's socket before the next request leaves the client: a
    // proxy must notice them before it reuses the connection (undici's idle-socket check).
    await written;
    const r2 = await h.px.send(up.port, '/idle/second');
    assert.equal(r2.final?.status, 200, r2.raw.toString('latin1'));
    assert.equal(bodyOf(r2), 'own:/idle/second');
    assert.ok(!r2.raw.toString('latin1').includes('STRAY'));
    assert.equal(up.conns.length, 2);
    await up.conns[0]!.gone();
    assert.equal(up.conns[0]!.requests.length, 1);
    await h.px.record('/idle/first');
    assert.equal(h.px.records('/idle/first').length, 1);
    await h.px.record('/idle/second');
  });

  it('a clean keep-alive exchange reuses its connection (the control case: three requests, one connection)', async () => {
    const up = await fresh();
    for (const n of [1, 2, 3]) {
      const r = await h.px.send(up.port, `/reuse/${n}`);
      assert.equal(bodyOf(r), `own:/reuse/${n}`);
    }
    assert.equal(up.conns.length, 1, 'three requests, one upstream connection');
    assert.deepEqual(up.conns[0]?.requests.map(pathOf), ['/reuse/1', '/reuse/2', '/reuse/3']);
    assert.deepEqual(h.ups.errors(), []);
    for (const [, text] of [
      ['audit', h.px.t.auditText()],
      ['stderr', h.px.t.stderr()],
    ])
      assert.ok(!text?.includes(STRAY), 'stray bytes are in no output');
  });
});
