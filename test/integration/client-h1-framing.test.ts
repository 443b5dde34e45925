/**
 * What a client inside an intercepted tunnel reads, byte for byte: the response heads Turret
 * writes (status line, field order, Date, Connection / Keep-Alive, Transfer-Encoding), how a body
 * is framed for it (the upstream's Content-Length relayed; an unknown length re-framed chunked for
 * HTTP/1.1, delimited by the close for HTTP/1.0), HEAD / 204 / 304 without a body, HTTP/1.0
 * clients with and without keep-alive, and `Connection: close` from the client (answered, then
 * closed; nothing after it is read). Raw TLS client inside CONNECT, real turret, scripted upstream
 * (test/helpers/client-h1.ts); every exchange has exactly one audit record. These pin the
 * behaviour of node:http's server on the decrypted connections, so a replacement keeps it.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useH1 } from '../helpers/h1-proxy.js';
import { header, type WireMessage } from '../helpers/http-wire.js';
import { awaitResponses, byPath, headLines, oneEach, openTunnel, refusalsIn, request, responsesTo } from '../helpers/client-h1.js';
import { pathOf } from '../helpers/h1-upstream.js';

/** An IMF-fixdate (RFC 9110 §5.6.7), as node:http writes Date. */
const IMF = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/;
const KEEP = ['Connection: keep-alive', 'Keep-Alive: timeout=30'];
const CLOSE = ['Connection: close'];

/** A head's lines with field names lower-cased (names are case-insensitive; order and values are pinned). */
function head(m: WireMessage | undefined): string[] {
  assert.ok(m, 'a response');
  for (const d of header(m, 'date')) assert.match(d, IMF);
  return headLines(m).map((l, i) => (i === 0 ? l : l.replace(/^[^:]+/, (k) => k.toLowerCase())));
}

const lower = (lines: string[]): string[] => lines.map((l, i) => (i === 0 ? l : l.replace(/^[^:]+/, (k) => k.toLowerCase())));

describe('client-side framing inside an intercepted tunnel', () => {
  const h = useH1();
  let port = 0;
  const seen: WireMessage[] = [];
  before(async () => {
    port = (await h.ups.start(byPath(undefined, seen))).tlsPort;
  });

  it('a Content-Length answer: exact head with Date and keep-alive fields; the connection serves the next request', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'GET', '/cl/fr-a1'));
    const [a] = await awaitResponses(t, ['GET']);
    assert.deepEqual(head(a), lower(['HTTP/1.1 200 OK', 'content-type: text/plain', 'content-length: 13', 'Date: <date>', ...KEEP]));
    assert.equal(a?.body.toString(), 'own:/cl/fr-a1');
    t.write(request(port, 'GET', '/cl/fr-a2', { headers: 'Connection: close\r\n' }));
    const all = responsesTo(await t.done(), ['GET', 'GET'], true);
    assert.equal(all.problem, null);
    assert.equal(all.rest.length, 0, 'nothing after the second answer');
    assert.deepEqual(head(all.responses[1]), lower(['HTTP/1.1 200 OK', 'content-type: text/plain', 'content-length: 13', 'Date: <date>', ...CLOSE]));
    const recs = await oneEach(h.px, ['/cl/fr-a1', '/cl/fr-a2']);
    assert.deepEqual(
      recs.map((r) => [r.path, r.status, r.outcome, r.bytes_out, r.code]),
      [
        ['/cl/fr-a1', 200, 'completed', 13, undefined],
        ['/cl/fr-a2', 200, 'completed', 13, undefined],
      ],
    );
  });

  it('an answer without length (the upstream closes) is re-framed chunked for HTTP/1.1 and the connection stays open; a chunked one stays chunked', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'GET', '/close/fr-b1'));
    const [b] = await awaitResponses(t, ['GET']);
    assert.equal(b?.framing, 'chunked');
    assert.deepEqual(head(b), lower(['HTTP/1.1 200 OK', 'content-type: text/plain', 'Date: <date>', ...KEEP, 'Transfer-Encoding: chunked']));
    assert.equal(b?.body.toString(), 'own:/close/fr-b1');
    t.write(request(port, 'GET', '/chunked/fr-b2', { headers: 'Connection: close\r\n' }));
    const all = responsesTo(await t.done(), ['GET', 'GET'], true);
    assert.equal(all.problem, null);
    assert.equal(all.rest.length, 0);
    const c = all.responses[1];
    assert.equal(c?.framing, 'chunked');
    assert.deepEqual(head(c), lower(['HTTP/1.1 200 OK', 'content-type: text/plain', 'Date: <date>', ...CLOSE, 'Transfer-Encoding: chunked']));
    assert.equal(c?.body.toString(), 'own:/chunked/fr-b2');
    const recs = await oneEach(h.px, ['/close/fr-b1', '/chunked/fr-b2']);
    assert.deepEqual(
      recs.map((r) => [r.status, r.outcome, r.bytes_out]),
      [
        [200, 'completed', 16],
        [200, 'completed', 18],
      ],
    );
  });

  it('HTTP/1.0 without keep-alive: the length answer says Connection: close, and the connection closes', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'GET', '/cl/fr-c1', { version: '1.0' }));
    const all = responsesTo(await t.done(), ['GET'], true);
    assert.equal(all.problem, null);
    assert.equal(all.rest.length, 0);
    assert.deepEqual(head(all.responses[0]), lower(['HTTP/1.1 200 OK', 'content-type: text/plain', 'content-length: 13', 'Date: <date>', ...CLOSE]));
    assert.equal((await h.px.record('/cl/fr-c1')).status, 200);
  });

  it('HTTP/1.0 without keep-alive, unknown length: no chunking, the body ends with the close', async () => {
    for (const p of ['/close/fr-d1', '/chunked/fr-d2']) {
      const t = await openTunnel(h.px, port);
      t.write(request(port, 'GET', p, { version: '1.0' }));
      const all = responsesTo(await t.done(), ['GET'], true);
      assert.equal(all.problem, null);
      const m = all.responses[0];
      assert.equal(m?.framing, 'close', p);
      assert.deepEqual(head(m), lower(['HTTP/1.1 200 OK', 'content-type: text/plain', 'Date: <date>', ...CLOSE]), p);
      assert.equal(m?.body.toString(), `own:${p}`);
      const rec = await h.px.record(p);
      assert.deepEqual([rec.status, rec.outcome, rec.bytes_out], [200, 'completed', p.length + 4]);
    }
  });

  it('HTTP/1.0 with Connection: keep-alive: a length answer keeps the connection; an unknown length then closes it', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'GET', '/cl/fr-e1', { version: '1.0', headers: 'Connection: keep-alive\r\n' }));
    const [e] = await awaitResponses(t, ['GET']);
    assert.deepEqual(head(e), lower(['HTTP/1.1 200 OK', 'content-type: text/plain', 'content-length: 13', 'Date: <date>', ...KEEP]));
    t.write(request(port, 'GET', '/close/fr-e2', { version: '1.0', headers: 'Connection: keep-alive\r\n' }));
    const all = responsesTo(await t.done(), ['GET', 'GET'], true);
    assert.equal(all.problem, null);
    const f = all.responses[1];
    assert.equal(f?.framing, 'close');
    assert.deepEqual(head(f), lower(['HTTP/1.1 200 OK', 'content-type: text/plain', 'Date: <date>', ...CLOSE]));
    assert.equal(f?.body.toString(), 'own:/close/fr-e2');
    await oneEach(h.px, ['/cl/fr-e1', '/close/fr-e2']);
  });

  it('HEAD, 204 and 304 in one write: no body on any, no framing field on 204/304, the next answer follows at once', async () => {
    const t = await openTunnel(h.px, port);
    const methods = ['HEAD', 'GET', 'GET', 'GET'];
    t.write(
      Buffer.concat([
        request(port, 'HEAD', '/cl/fr-g1'),
        request(port, 'GET', '/204/fr-g2'),
        request(port, 'GET', '/304/fr-g3'),
        request(port, 'GET', '/cl/fr-g4', { headers: 'Connection: close\r\n' }),
      ]),
    );
    const all = responsesTo(await t.done(), methods, true);
    assert.equal(all.problem, null);
    assert.equal(all.rest.length, 0);
    const [g1, g2, g3, g4] = all.responses;
    assert.deepEqual(head(g1), lower(['HTTP/1.1 200 OK', 'content-type: text/plain', 'content-length: 13', 'Date: <date>', ...KEEP]));
    assert.deepEqual(head(g2), lower(['HTTP/1.1 204 No Content', 'x-kind: 204', 'Date: <date>', ...KEEP]));
    assert.deepEqual(head(g3), lower(['HTTP/1.1 304 Not Modified', 'etag: "e1"', 'Date: <date>', ...KEEP]));
    assert.equal(g4?.body.toString(), 'own:/cl/fr-g4');
    const recs = await oneEach(h.px, ['/cl/fr-g1', '/204/fr-g2', '/304/fr-g3', '/cl/fr-g4']);
    assert.deepEqual(
      recs.map((r) => [r.method, r.status, r.outcome, r.bytes_out]),
      [
        ['HEAD', 200, 'completed', 0],
        ['GET', 204, 'completed', 0],
        ['GET', 304, 'completed', 0],
        ['GET', 200, 'completed', 13],
      ],
    );
  });

  it('Connection: close from the client: answered with Connection: close, then closed; a request pipelined behind it is neither answered nor forwarded', async () => {
    const t = await openTunnel(h.px, port);
    t.write(Buffer.concat([request(port, 'GET', '/cl/fr-h1', { headers: 'Connection: close\r\n' }), request(port, 'GET', '/cl/fr-h2')]));
    const all = responsesTo(await t.done(), ['GET', 'GET'], true);
    assert.equal(all.problem, null);
    assert.equal(all.responses.length, 1, 'one answer only');
    assert.equal(all.rest.length, 0);
    assert.deepEqual(head(all.responses[0]), lower(['HTTP/1.1 200 OK', 'content-type: text/plain', 'content-length: 13', 'Date: <date>', ...CLOSE]));
    const [rec] = await oneEach(h.px, ['/cl/fr-h1']);
    assert.equal(rec?.status, 200);
    // The next tunnel is served: by then the upstream has had every request the first one led to.
    const n = await openTunnel(h.px, port);
    n.write(request(port, 'GET', '/cl/fr-h3', { headers: 'Connection: close\r\n' }));
    assert.equal(responsesTo(await n.done(), ['GET'], true).responses[0]?.body.toString(), 'own:/cl/fr-h3');
    await oneEach(h.px, ['/cl/fr-h3']);
    assert.deepEqual(
      seen.map(pathOf).filter((p) => p.includes('fr-h')),
      ['/cl/fr-h1', '/cl/fr-h3'],
      'the request after Connection: close never reached the upstream',
    );
    assert.equal(h.px.records('/cl/fr-h2').length, 0, 'no request record of its own');
    // The bytes after the close are refused as the parser sees them: one record, no path.
    assert.deepEqual(
      (await refusalsIn(h.px, rec?.tunnel_id)).map((r) => [r.status, r.code, r.path]),
      [[400, 'bad_request', undefined]],
    );
  });
});
