/**
 * A request without a body (the common GET) is forwarded without an async frame or a promise per
 * step (forward.ts forwardThen, pipeline.ts runExchange): the pool's callback and the response's
 * 'finish' / 'close' carry it to its one audit record. These are the ways such a fast path goes
 * wrong, each on one keep-alive connection inside an intercepted tunnel (raw TLS client, real
 * turret, scripted TLS upstream):
 *
 * - every kind of answer in turn (a small body with the secret and a token in it, a streamed body
 *   released later, 204, HEAD, a GET with `Content-Length: 0`, a POST with a body, a request
 *   refused before forward, an upstream that closes before its answer): each answered in order,
 *   the secret never relayed, and exactly one record each with its real cause;
 * - the client leaves while the upstream holds its answer: one record, client_closed "while
 *   waiting for the response", and the upstream connection is closed (the request was stopped);
 * - the client leaves between requests: nothing more is recorded than what was asked.
 *
 * Every output (client bytes, the upstream's, the audit log, the proxy's logs) is grepped for the
 * generated fake secret.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { useH1 } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';
import { Gates, openTunnel, recordsOf, request, responsesTo, type RawTunnel } from '../helpers/client-h1.js';
import { ok, pathOf, type H1Conn } from '../helpers/h1-upstream.js';

const SECRET = `fake_${randomBytes(16).toString('hex')}`;
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** A GitHub token's shape (a built-in pattern), generated. */
const PAT = `ghp_${[...randomBytes(36)].map((b) => ALNUM[b % ALNUM.length]).join('')}`;

describe('a request without a body, forwarded from callbacks: every phase ends in one record with its cause', () => {
  const h = useH1({ secret: true, env: { TEST_H1_TOKEN: SECRET } });
  const gates = new Gates();
  const upstreamBytes: Buffer[] = [];
  const clientBytes: Buffer[] = [];
  /** The upstream connection that got a `/hold/` request, by path (resolved when it arrives). */
  const holding = new Map<string, { conn: Promise<H1Conn>; resolve: (c: H1Conn) => void }>();
  const held = (p: string): { conn: Promise<H1Conn>; resolve: (c: H1Conn) => void } => {
    let h = holding.get(p);
    if (!h) {
      let resolve: (c: H1Conn) => void = () => {};
      const conn = new Promise<H1Conn>((r) => (resolve = r));
      h = { conn, resolve };
      holding.set(p, h);
    }
    return h;
  };
  let port = 0;

  /** The upstream's answer by the first path segment; the connection is kept unless the answer breaks it. */
  const script = async (c: H1Conn): Promise<void> => {
    try {
      for (let i = 0; i < 100; i++) {
        const m = await c.request(i);
        const p = pathOf(m);
        const kind = p.split('/')[1] ?? '';
        const method = m.startLine.split(' ')[0] ?? '';
        if (kind === 'small') await c.send(ok(`own:${p} ${SECRET} ${PAT}`));
        else if (kind === 'stream') {
          await c.send(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n`);
          await gates.wait(p);
          await c.send(`${(p.length + 1).toString(16)}\r\n ${p}\r\n0\r\n\r\n`);
        } else if (kind === '204') await c.send('HTTP/1.1 204 No Content\r\nX-Kind: 204\r\n\r\n');
        else if (method === 'HEAD') await c.send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\n');
        else if (kind === 'echo') await c.send(ok(`${method} ${p} ${m.body.toString('latin1')}`));
        else if (kind === 'rst')
          return void c.socket.destroy(); // closed before any answer (and again on the retry)
        else if (kind === 'hold') {
          held(p).resolve(c);
          await c.gone();
          return;
        } else await c.send(ok(`own:${p}`));
      }
    } finally {
      upstreamBytes.push(c.data);
    }
  };

  before(async () => {
    port = (await h.ups.start(script)).tlsPort;
  });

  after(() => {
    const outputs = [...upstreamBytes, ...clientBytes].map((b) => b.toString('latin1'));
    for (const s of [...outputs, h.px.t.auditText(), h.px.t.stderr(), h.px.t.stdout()]) assert.ok(!s.includes(SECRET), 'the secret appears in no output');
  });

  /** Each path's records once the connection's `n` are written: exactly one each, by path. */
  const byPath = async (t: RawTunnel, n: number): Promise<Map<string, Record<string, unknown>>> => {
    const recs = await recordsOf(h.px, t, n);
    const out = new Map<string, Record<string, unknown>>();
    for (const r of recs) {
      assert.ok(!out.has(String(r.path)), `one record for ${String(r.path)}: ${JSON.stringify(recs)}`);
      out.set(String(r.path), r);
    }
    return out;
  };

  it('every kind of answer in turn on one connection: in order, scrubbed, one record each with its cause', async () => {
    const t = await openTunnel(h.px, port);
    const steps: Array<{ method: string; p: string; o?: Parameters<typeof request>[3] }> = [
      { method: 'GET', p: '/small/a' },
      { method: 'GET', p: '/stream/b' },
      { method: 'GET', p: '/204/c' },
      { method: 'HEAD', p: '/head/d' },
      { method: 'GET', p: '/echo/e', o: { headers: 'Content-Length: 0\r\n' } },
      { method: 'POST', p: '/echo/f', o: { body: 'a body' } },
      // TRACE is never allowed: refused before forward, the connection stays.
      { method: 'GET', p: '/own/g', o: { headers: 'X-HTTP-Method-Override: TRACE\r\n' } },
      { method: 'GET', p: '/small/h' },
      { method: 'GET', p: '/rst/i' },
      { method: 'GET', p: '/small/j' },
    ];
    const methods: string[] = [];
    for (const [i, s] of steps.entries()) {
      methods.push(s.method);
      t.write(request(port, s.method, s.p, s.o));
      if (s.p === '/stream/b') {
        // The head and the first line are relayed before the rest exists (the scrubber lets a
        // held line go after its idle flush).
        await t.until((b) => b.toString('latin1').includes('first\n'), 'the streamed body to start');
        gates.release(s.p);
      }
      await t.until((b) => responsesTo(b, methods, false).responses.filter((m) => m.status >= 200).length > i, `answer ${i + 1}`);
    }
    const all = responsesTo(t.got(), methods, false);
    clientBytes.push(t.got());
    assert.equal(all.problem, null);
    assert.equal(all.rest.length, 0);
    assert.deepEqual(
      all.responses.map((m) => [m.status, header(m, 'x-turret-error')[0] ?? null]),
      [
        [200, null],
        [200, null],
        [204, null],
        [200, null],
        [200, null],
        [200, null],
        [403, 'method_forbidden'],
        [200, null],
        [502, 'upstream_closed'],
        [200, null],
      ],
    );
    const small = all.responses[0]!.body.toString('latin1');
    assert.equal(small, `own:/small/a [REDACTED:secret:h1-token] [REDACTED:github-pat]`);
    assert.deepEqual(header(all.responses[0]!, 'content-length'), [String(Buffer.byteLength(small))]);
    assert.equal(all.responses[1]!.body.toString('latin1'), 'first\n /stream/b');
    assert.equal(all.responses[3]!.body.length, 0, 'HEAD: no body');
    assert.equal(all.responses[4]!.body.toString('latin1'), 'GET /echo/e ');
    assert.equal(all.responses[5]!.body.toString('latin1'), 'POST /echo/f a body');
    assert.equal(all.responses[9]!.body.toString('latin1'), `own:/small/j [REDACTED:secret:h1-token] [REDACTED:github-pat]`);
    t.s.destroy();
    const recs = await byPath(t, steps.length);
    const view = steps.map((s) => {
      const r = recs.get(s.p);
      return [s.p, r?.outcome, r?.status, r?.code ?? null];
    });
    assert.deepEqual(view, [
      ['/small/a', 'completed', 200, null],
      ['/stream/b', 'completed', 200, null],
      ['/204/c', 'completed', 204, null],
      ['/head/d', 'completed', 200, null],
      ['/echo/e', 'completed', 200, null],
      ['/echo/f', 'completed', 200, null],
      ['/own/g', 'denied', 403, 'method_forbidden'],
      ['/small/h', 'completed', 200, null],
      ['/rst/i', 'failed', 502, 'upstream_closed'],
      ['/small/j', 'completed', 200, null],
    ]);
    assert.equal(recs.get('/small/a')?.redactions, 2);
    assert.equal(recs.get('/small/a')?.bytes_out, Buffer.byteLength(small));
    assert.equal(recs.get('/stream/b')?.bytes_out, 'first\n /stream/b'.length);
  });

  it('the client leaves while the upstream holds its answer: one record, client_closed while waiting, and the upstream request is stopped', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'GET', '/small/l'));
    await t.until((b) => responsesTo(b, ['GET'], false).responses.length > 0, 'the first answer');
    t.write(request(port, 'GET', '/hold/m'));
    // The upstream has the request: the client goes.
    const conn = await held('/hold/m').conn;
    t.s.destroy();
    await conn.gone();
    clientBytes.push(t.got());
    const recs = await byPath(t, 2);
    assert.equal(recs.get('/small/l')?.outcome, 'completed');
    const r = recs.get('/hold/m');
    assert.equal(r?.code, 'client_closed');
    assert.match(String(r?.reason), /while waiting for the response/);
  });

  it('the client leaves between keep-alive requests: only what it asked is recorded, and the next client is served', async () => {
    const t = await openTunnel(h.px, port);
    for (const [i, p] of ['/small/n', '/own/o'].entries()) {
      t.write(request(port, 'GET', p));
      await t.until((b) => responsesTo(b, ['GET', 'GET'], false).responses.length > i, `answer ${i + 1}`);
    }
    clientBytes.push(t.got());
    t.s.destroy();
    await byPath(t, 2);
    const next = await openTunnel(h.px, port);
    next.write(request(port, 'GET', '/own/p'));
    await next.until((b) => responsesTo(b, ['GET'], false).responses.length > 0, 'the next answer');
    next.s.destroy();
    await byPath(next, 1);
    // Nothing came late for the first connection.
    assert.equal((await byPath(t, 2)).size, 2);
  });
});
