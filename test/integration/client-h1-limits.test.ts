/**
 * Client limits on the decrypted connection of an intercepted tunnel, at their edges:
 * max_header_bytes counted as llhttp counts it (request target, field names and values: the
 * request line's method and version, the separators and line ends are not counted), one byte
 * under the limit forwarded and the limit itself refused 431 with its record; a long URL is the
 * same limit (431, not 414); client_headers_timeout for a connection that sends nothing or half a
 * head (408 client_timeout, raw, one record in the tunnel); client_request_timeout for a body
 * that stops (the connection closes without an answer, one client_timeout record). Raw TLS client
 * inside CONNECT, real turret with small limits, scripted upstream (test/helpers/client-h1.ts).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useH1 } from '../helpers/h1-proxy.js';
import { header, type WireMessage } from '../helpers/http-wire.js';
import { pathOf } from '../helpers/h1-upstream.js';
import { byPath, expectRawRefusal, HOST, openTunnel, recordsOf, request, responsesTo } from '../helpers/client-h1.js';

const MAX = 4096;

describe('client limits inside an intercepted tunnel', () => {
  const h = useH1({ args: ['--limit', `max_header_bytes=${MAX}`, '--limit', 'client_headers_timeout=1s', '--limit', 'client_request_timeout=2s'] });
  let port = 0;
  const seen: WireMessage[] = [];
  before(async () => {
    port = (await h.ups.start(byPath(undefined, seen))).tlsPort;
  });

  /** The X-Pad value that makes a GET of `p` count exactly `n` head bytes (target + names + values). */
  function pad(p: string, n: number): string {
    const fixed = p.length + 'Host'.length + `${HOST}:${port}`.length + 'Connection'.length + 'close'.length + 'X-Pad'.length;
    return 'p'.repeat(n - fixed);
  }
  const counted = (p: string, n: number): Buffer => request(port, 'GET', p, { headers: `Connection: close\r\nX-Pad: ${pad(p, n)}\r\n` });

  it(`max_header_bytes=${MAX}: a head counting ${MAX - 1} bytes is forwarded; one counting ${MAX} is refused 431 with its record, nothing forwarded`, async () => {
    const under = await openTunnel(h.px, port);
    under.write(counted('/cl/hl-under', MAX - 1));
    const a = responsesTo(await under.done(), ['GET'], true);
    assert.equal(a.responses[0]?.status, 200);
    assert.equal(a.responses[0]?.body.toString(), 'own:/cl/hl-under');
    assert.deepEqual(
      header(
        seen.find((x) => pathOf(x) === '/cl/hl-under')!,
        'x-pad',
      ),
      [pad('/cl/hl-under', MAX - 1)],
      'forwarded whole',
    );
    const [ok] = await recordsOf(h.px, under);
    assert.equal(ok?.status, 200);

    const at = await openTunnel(h.px, port);
    at.write(counted('/cl/hl-at', MAX));
    await expectRawRefusal(at, 'HTTP/1.1 431 Request Header Fields Too Large', 'headers_too_large', new RegExp(`^Reason: request headers exceed ${MAX} bytes$`, 'm'));
    const [rec] = await recordsOf(h.px, at);
    assert.deepEqual([rec?.status, rec?.code, rec?.outcome, rec?.path, typeof rec?.tunnel_id], [431, 'headers_too_large', 'denied', undefined, 'string']);
    assert.equal(seen.filter((x) => pathOf(x) === '/cl/hl-at').length, 0);
  });

  it('a URL longer than max_header_bytes on its own: 431 headers_too_large (not 414), one record', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'GET', `/cl/${'u'.repeat(MAX)}`));
    const r = responsesTo(await t.done(), ['GET'], true);
    assert.equal(r.responses[0]?.status, 431);
    assert.deepEqual(header(r.responses[0]!, 'x-turret-error'), ['headers_too_large']);
    const [rec] = await recordsOf(h.px, t);
    assert.deepEqual([rec?.status, rec?.code], [431, 'headers_too_large']);
  });

  for (const [what, bytes] of [
    ['sends nothing after the handshake', ''],
    ['sends half a head, then nothing', 'GET /cl/hl-half HTTP/1.1\r\nHost: up.turret'],
  ] as const) {
    it(`a connection that ${what}: 408 client_timeout written raw, then the close; one record in its tunnel`, async () => {
      const t = await openTunnel(h.px, port);
      if (bytes) t.write(bytes);
      await expectRawRefusal(
        t,
        'HTTP/1.1 408 Request Timeout',
        'client_timeout',
        /^Reason: no complete request arrived within 1s \(client_headers_timeout\); the connection is closed$/m,
      );
      const [rec] = await recordsOf(h.px, t);
      assert.deepEqual([rec?.status, rec?.code, rec?.outcome, rec?.path, typeof rec?.tunnel_id], [408, 'client_timeout', 'denied', undefined, 'string']);
    });
  }

  it('a body that stops after the head (client_request_timeout): closed without an answer, one client_timeout record, no whole request upstream', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'POST', '/echo/hl-body', { headers: 'Content-Length: 100\r\n', body: 'only ten b' }));
    assert.equal((await t.done()).length, 0, 'no answer');
    const [rec] = await recordsOf(h.px, t);
    assert.deepEqual([rec?.path, rec?.code, rec?.reason], ['/echo/hl-body', 'client_timeout', 'the client did not send the whole request in time (client_request_timeout)']);
    assert.equal(seen.filter((x) => pathOf(x) === '/echo/hl-body').length, 0);
  });
});
