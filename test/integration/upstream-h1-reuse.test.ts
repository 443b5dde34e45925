/**
 * Keep-alive reuse of upstream connections, counted at the upstream (accepted sockets and the
 * requests each carried, no timing): a connection the upstream closes while idle (FIN, RST) is not
 * used again; one it closes when the next request arrives on it gives that request one clear
 * record: a GET is sent once more on a new connection (never a third time), a POST is never
 * written twice; `Connection: close`, an HTTP/1.0 response without
 * keep-alive and a close-delimited body end their connection (the proxy closes it itself when the
 * upstream leaves it open); HTTP/1.0 with `Connection: keep-alive` and a 1.1 response with a
 * `Keep-Alive: timeout=1` hint are pinned as main (undici) does them today: the first is reused, the
 * second is not (a hint shorter than the reuse margin means "do not reuse"). Every test has its own
 * upstream port, so its own pool.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ok, pathOf, type H1Conn, type H1Upstream } from '../helpers/h1-upstream.js';
import { bodyOf, useH1 } from '../helpers/h1-proxy.js';

/** One request's answer: the bytes, then what the connection does. */
type Step = (c: H1Conn, i: number, p: string) => Promise<'next' | 'stop'>;

describe('keep-alive reuse of upstream connections', () => {
  const h = useH1();
  const fresh = (step: Step): Promise<H1Upstream> =>
    h.ups.start(async (c) => {
      for (let i = 0; i < 20; i++) {
        const req = await c.request(i);
        if ((await step(c, i, pathOf(req))) === 'stop') return;
      }
    });

  for (const how of ['end', 'reset'] as const) {
    const tag = how === 'end' ? 'fin' : 'rst';
    it(`an idle connection the upstream ${how === 'end' ? 'ends (FIN)' : 'resets (RST)'}: the proxy drops it, the next GET gets a new connection`, async () => {
      const up = await fresh(async (c, _i, p) => {
        await c.send(ok(`own:${p}`));
        if (c.id !== 0) return 'next';
        if (how === 'end') c.end();
        else c.reset();
        return 'stop';
      });
      assert.equal(bodyOf(await h.px.send(up.port, `/${tag}/1`)), `own:/${tag}/1`);
      // After a FIN the socket's 'close' comes when the proxy has closed its side too.
      await up.conns[0]?.gone();
      assert.equal(bodyOf(await h.px.send(up.port, `/${tag}/2`)), `own:/${tag}/2`);
      assert.equal(up.accepted.plain, 2);
      assert.deepEqual(
        up.conns.map((c) => c.requests.map(pathOf)),
        [[`/${tag}/1`], [`/${tag}/2`]],
      );
      assert.equal((await h.px.record(`/${tag}/2`)).status, 200);
    });
  }

  for (const how of ['end', 'reset'] as const) {
    for (const method of ['GET', 'POST'] as const) {
      // An idempotent request without a body is sent once more on a new connection (docs/security.md
      // "Response framing", Retry); a POST is never repeated.
      const retried = method === 'GET';
      it(`a ${method} on a pooled connection the upstream ${how === 'end' ? 'ends (FIN)' : 'resets'} as the request arrives: ${retried ? 'sent once more on a new connection, one completed record' : '502 upstream_closed, one record, written upstream once'}`, async () => {
        const body = method === 'POST' ? 'payload-'.repeat(100) : undefined;
        const up = await fresh(async (c, i, p) => {
          if (c.id === 0 && i === 1) {
            // The request arrived whole on the reused connection; it is closed unanswered.
            if (how === 'end') c.end();
            else c.reset();
            return 'stop';
          }
          await c.send(ok(`own:${p}`));
          return 'next';
        });
        const first = `/closed-under/${how}-${method}/1`;
        const second = `/closed-under/${how}-${method}/2`;
        assert.equal(bodyOf(await h.px.send(up.port, first)), `own:${first}`);
        const r = await h.px.send(up.port, second, { method, body });
        assert.equal(r.parsed.problem, null);
        const rec = await h.px.record(second);
        if (retried) {
          assert.equal(r.final?.status, 200, r.raw.toString('latin1'));
          assert.equal(bodyOf(r), `own:${second}`);
          assert.equal(rec.outcome, 'completed');
          assert.equal(rec.status, 200);
          // Written once on the reused connection, once on the new one, never a third time.
          const delivered = up.conns.flatMap((c) => c.requests.filter((m) => pathOf(m) === second).map(() => c.id));
          assert.deepEqual(delivered, [0, 1], 'the request was written on the closed connection, then once on a new one');
          assert.equal(up.accepted.plain, 2, 'one new connection for the retry');
          await h.px.servesNext(up.port, `/closed-under/${how}-${method}/3`, second);
          return;
        }
        assert.equal(r.final?.status, 502, r.raw.toString('latin1'));
        assert.equal(rec.code, 'upstream_closed');
        assert.equal(rec.outcome, 'failed');
        assert.equal(rec.status, 502);
        // The request reached the upstream once, on the reused connection, and was not sent again.
        await up.waitFor(() => up.conns.every((c) => c.closed), 'every upstream connection closed');
        const delivered = up.conns.flatMap((c) => c.requests.filter((m) => pathOf(m) === second));
        assert.equal(delivered.length, 1, 'the request was written upstream exactly once');
        if (body) assert.equal(delivered[0]?.body.toString(), body);
        assert.equal(up.accepted.plain, 1, 'no second connection was opened for it');
        // The proxy still serves this origin.
        await h.px.servesNext(up.port, `/closed-under/${how}-${method}/3`, second);
      });
    }
  }

  const closing: Array<{ name: string; answer: (p: string) => string; conns: number; upstreamCloses: boolean }> = [
    { name: 'Connection: close (the upstream leaves the socket open)', answer: (p) => ok(`own:${p}`, 'Connection: close\r\n'), conns: 2, upstreamCloses: false },
    {
      name: 'HTTP/1.0 with a Content-Length and no keep-alive (the upstream leaves the socket open)',
      answer: (p) => `HTTP/1.0 200 OK\r\nContent-Length: ${`own:${p}`.length}\r\n\r\nown:${p}`,
      conns: 2,
      upstreamCloses: false,
    },
    { name: 'HTTP/1.0 with a close-delimited body', answer: (p) => `HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nown:${p}`, conns: 2, upstreamCloses: true },
    { name: 'HTTP/1.1 with a close-delimited body', answer: (p) => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nown:${p}`, conns: 2, upstreamCloses: true },
  ];
  for (const k of closing) {
    it(`${k.name}: both requests answered, ${k.conns} upstream connections`, async () => {
      const up = await fresh(async (c, _i, p) => {
        await c.send(k.answer(p));
        if (k.upstreamCloses) c.end();
        return 'next';
      });
      const tag = k.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
      for (const n of [1, 2]) {
        const r = await h.px.send(up.port, `/close/${tag}/${n}`);
        assert.equal(r.final?.status, 200, r.raw.toString('latin1'));
        assert.equal(bodyOf(r), `own:/close/${tag}/${n}`);
      }
      // The second request was sent as soon as the first was answered: a pooled connection would
      // have carried it. Not pooled, and closed by the proxy (which may not wait for the upstream).
      assert.equal(up.accepted.plain, k.conns);
      for (const c of up.conns) await c.gone();
      assert.deepEqual(
        up.conns.map((c) => c.requests.length),
        [1, 1],
      );
      for (const n of [1, 2]) {
        assert.equal((await h.px.record(`/close/${tag}/${n}`)).outcome, 'completed');
        assert.equal(h.px.records(`/close/${tag}/${n}`).length, 1);
      }
    });
  }

  it('HTTP/1.0 with Connection: keep-alive and a Content-Length: the connection is reused (three requests, one connection)', async () => {
    const up = await fresh(async (c, _i, p) => {
      await c.send(`HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: ${`own:${p}`.length}\r\n\r\nown:${p}`);
      return 'next';
    });
    for (const n of [1, 2, 3]) assert.equal(bodyOf(await h.px.send(up.port, `/kept10/${n}`)), `own:/kept10/${n}`);
    assert.equal(up.accepted.plain, 1);
    assert.deepEqual(up.conns[0]?.requests.map(pathOf), ['/kept10/1', '/kept10/2', '/kept10/3']);
  });

  it('a Keep-Alive: timeout=1 hint (shorter than the reuse margin): each connection carries one request and the proxy closes it', async () => {
    const up = await fresh(async (c, _i, p) => {
      await c.send(ok(`own:${p}`, 'Keep-Alive: timeout=1\r\n'));
      return 'next';
    });
    // Back to back: a connection kept for the hint's second would carry the next request.
    for (const n of [1, 2, 3]) assert.equal(bodyOf(await h.px.send(up.port, `/hint/${n}`)), `own:/hint/${n}`);
    assert.equal(up.accepted.plain, 3);
    for (const c of up.conns) await c.gone();
    assert.deepEqual(
      up.conns.map((c) => c.requests.map(pathOf)),
      [['/hint/1'], ['/hint/2'], ['/hint/3']],
    );
  });

  it('no upstream script failed', () => {
    assert.deepEqual(h.ups.errors(), []);
  });
});
