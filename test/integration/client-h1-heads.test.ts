/**
 * How the decrypted connection of an intercepted tunnel reads a request head, as the upstream
 * then sees it: 100 fields (more than llhttp hands over at once: the binding flushes every 32),
 * names in their own case, duplicates in order, an empty value, tabs around and inside a value, a
 * value with obs-text bytes (passed byte for byte), a target with a query and %-escapes (verbatim
 * upstream, query values stripped in the record); a whole request written one byte per write;
 * 1,001 fields refused 431; a GET with a body forwarded with it. Raw TLS client inside CONNECT,
 * real turret, scripted upstream (test/helpers/client-h1.ts).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useH1 } from '../helpers/h1-proxy.js';
import { header, type WireMessage } from '../helpers/http-wire.js';
import { pathOf } from '../helpers/h1-upstream.js';
import { byPath, oneEach, openTunnel, recordsOf, request, responsesTo } from '../helpers/client-h1.js';

describe('request heads read on the decrypted connection', () => {
  const h = useH1();
  let port = 0;
  const seen: WireMessage[] = [];
  const at = (p: string): WireMessage | undefined => seen.find((m) => pathOf(m) === p);
  before(async () => {
    port = (await h.ups.start(byPath(undefined, seen))).tlsPort;
  });

  it('100 fields with duplicates, odd case, an empty value, tabs and obs-text: the upstream gets them all, in order, byte for byte', async () => {
    const sent: Array<[string, string]> = Array.from({ length: 100 }, (_, i) => [i % 7 === 0 ? 'X-Dup' : `X-F${i}`, `v${i}`]);
    sent.push(['x-lower-Case', 'ok'], ['X-Empty', ''], ['X-Tab', 'a\tb'], ['X-Obs', 'caf\xe9 \xff']);
    const wire = sent.map(([k, v]) => (k === 'X-Tab' ? `${k}:\t ${v} \t\r\n` : `${k}: ${v}\r\n`)).join('');
    const target = '/echo/hd-1?a=1&b=%41%2F&c';
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'GET', target, { headers: `${wire}Connection: close\r\n` }));
    const r = responsesTo(await t.done(), ['GET'], true);
    assert.equal(r.responses[0]?.body.toString(), `GET ${target} `);
    const m = at(target)!;
    assert.equal(m.startLine, `GET ${target} HTTP/1.1`);
    // Turret's own Host and Connection first, then the client's fields as sent (OWS trimmed).
    assert.deepEqual(m.headers.slice(0, 2), [
      ['host', `up.turret.test:${port}`],
      ['connection', 'keep-alive'],
    ]);
    assert.deepEqual(m.headers.slice(2), sent);
    const [rec] = await recordsOf(h.px, t);
    assert.equal(rec?.path, '/echo/hd-1?a=&b=&c', 'query values are not recorded');
  });

  it('a request written one byte per write (head, chunk sizes with an extension, trailer): answered once, body whole', async () => {
    const t = await openTunnel(h.px, port);
    const b = request(port, 'POST', '/echo/hd-2', { headers: 'Transfer-Encoding: chunked\r\nConnection: close\r\n', body: '3\r\nabc\r\n2;e=1\r\nde\r\n0\r\nT: 1\r\n\r\n' });
    for (const byte of b) t.s.write(Buffer.from([byte]));
    const r = responsesTo(await t.done(), ['POST'], true);
    assert.equal(r.problem, null);
    assert.deepEqual(
      r.responses.map((m) => [m.status, m.body.toString()]),
      [[200, 'POST /echo/hd-2 abcde']],
    );
    const [rec] = await oneEach(h.px, ['/echo/hd-2']);
    assert.equal(rec?.bytes_in, 5);
  });

  it('1,001 fields: 431 headers_too_large through the exchange’s response (Date, Connection: close), nothing forwarded, one record', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'GET', '/cl/hd-3', { headers: Array.from({ length: 1001 }, (_, i) => `X-M${i}: v\r\n`).join('') }));
    const r = responsesTo(await t.done(), ['GET'], true);
    assert.equal(r.rest.length, 0);
    const m = r.responses[0]!;
    assert.equal(m.startLine, 'HTTP/1.1 431 Request Header Fields Too Large');
    assert.deepEqual(
      m.headers.map(([k]) => k.toLowerCase()),
      ['content-type', 'content-length', 'x-turret-error', 'cache-control', 'connection', 'date'],
    );
    assert.deepEqual([header(m, 'x-turret-error')[0], header(m, 'connection')[0]], ['headers_too_large', 'close']);
    assert.match(m.body.toString(), /^Reason: a request may carry at most 1000 header fields$/m);
    const [rec] = await recordsOf(h.px, t);
    assert.deepEqual([rec?.method, rec?.status, rec?.code, rec?.path], ['GET', 431, 'headers_too_large', undefined]);
    assert.equal(at('/cl/hd-3'), undefined);
  });

  it('a GET with a Content-Length body: forwarded with its body, recorded with its size', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'GET', '/echo/hd-4', { headers: 'Connection: close\r\n', body: 'get-body' }));
    const r = responsesTo(await t.done(), ['GET'], true);
    assert.equal(r.responses[0]?.body.toString(), 'GET /echo/hd-4 get-body');
    assert.deepEqual(header(at('/echo/hd-4')!, 'content-length'), ['8']);
    const [rec] = await recordsOf(h.px, t);
    assert.equal(rec?.bytes_in, 8);
  });

  it('no upstream script failed', () => {
    assert.deepEqual(h.ups.errors(), []);
  });
});
