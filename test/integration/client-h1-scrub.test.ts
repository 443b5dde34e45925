/**
 * Scrubbing as the client reads it, in every framing Turret writes on the decrypted connection of
 * an intercepted tunnel: an upstream that reflects the injected secret (a generated fake) in a
 * body with a length (read whole, sent with the scrubbed length), in chunks split inside the
 * secret and in a body delimited by the close (streamed: chunked for an HTTP/1.1 client, delimited
 * by the close for an HTTP/1.0 one), pipelined on one connection. The client gets the redaction
 * marker in each, framed as pinned by client-h1-framing; the same secret in response fields
 * (repeated, odd case, beside obs-text, as a name, named by Connection), on two responses of one
 * connection; no output of any party holds the secret.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { useH1 } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';
import { ok, pathOf, type H1Conn } from '../helpers/h1-upstream.js';
import { assertNoSecrets, turretOutputs } from '../helpers/turret.js';
import { oneEach, openTunnel, request, responsesTo } from '../helpers/client-h1.js';

const SECRET = `fake_${randomBytes(16).toString('hex')}`;
const MARK = '[REDACTED:secret:h1-token]';

/**
 * The secret in response fields: in two Set-Cookie lines (one in odd case), beside obs-text bytes
 * under a name in odd case, as a field's name, in a field Connection names, and cut in two across
 * a repeated field (each line a value of its own: neither half is the secret).
 */
const HDR_FIELDS =
  `Set-Cookie: a=${SECRET}; Path=/\r\nset-COOKIE: b=${SECRET}\r\nX-ReFlEcT: caf\xe9 ${SECRET} \xff\r\nX-${SECRET}: named\r\n` +
  `Connection: X-Hidden\r\nX-Hidden: ${SECRET}\r\nX-Split: ${SECRET.slice(0, 12)}\r\nx-split: ${SECRET.slice(12)}\r\n`;

/** Reflects the secret by the path's first segment: with a length, in chunks cut inside it, or delimited by the close. */
async function reflect(c: H1Conn): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const p = pathOf(await c.request(i));
    const body = `<${p} ${SECRET} end>`;
    const kind = p.split('/')[1];
    if (kind === 'len') await c.send(ok(body));
    else if (kind === 'hdr') await c.send(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n${HDR_FIELDS}Content-Length: 2\r\n\r\nok`);
    else if (kind === 'chunks') {
      const cut = body.indexOf(SECRET) + 10;
      await c.send(
        `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n${cut.toString(16)}\r\n${body.slice(0, cut)}\r\n`,
        `${(body.length - cut).toString(16)}\r\n${body.slice(cut)}\r\n0\r\n\r\n`,
      );
    } else {
      await c.send(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n${body}`);
      c.end();
      return;
    }
  }
}

describe('scrubbed bodies in every client framing inside an intercepted tunnel', () => {
  const h = useH1({ secret: true, env: { TEST_H1_TOKEN: SECRET } });
  let port = 0;
  const seen: string[] = [];
  before(async () => {
    port = (await h.ups.start(reflect)).tlsPort;
  });

  it('HTTP/1.1, pipelined: a length body keeps a (scrubbed) length, chunks cut inside the secret and a close-delimited body are chunked; each carries the marker', async () => {
    const t = await openTunnel(h.px, port);
    t.write(Buffer.concat([request(port, 'GET', '/len/sc-1'), request(port, 'GET', '/chunks/sc-2'), request(port, 'GET', '/close/sc-3', { headers: 'Connection: close\r\n' })]));
    const raw = await t.done();
    seen.push(raw.toString('latin1'));
    const r = responsesTo(raw, ['GET', 'GET', 'GET'], true);
    assert.equal(r.problem, null);
    assert.equal(r.rest.length, 0);
    assert.deepEqual(
      r.responses.map((m) => [m.body.toString(), m.framing, header(m, 'content-length')[0]]),
      [
        [`</len/sc-1 ${MARK} end>`, 'length', String(`</len/sc-1 ${MARK} end>`.length)],
        [`</chunks/sc-2 ${MARK} end>`, 'chunked', undefined],
        [`</close/sc-3 ${MARK} end>`, 'chunked', undefined],
      ],
    );
    const recs = await oneEach(h.px, ['/len/sc-1', '/chunks/sc-2', '/close/sc-3']);
    assert.deepEqual(
      recs.map((x) => [x.status, x.bytes_out]),
      r.responses.map((m) => [200, m.body.length]),
    );
  });

  it('HTTP/1.0: the streamed bodies are delimited by the close, with the marker', async () => {
    for (const p of ['/chunks/sc-4', '/close/sc-5']) {
      const t = await openTunnel(h.px, port);
      t.write(request(port, 'GET', p, { version: '1.0' }));
      const raw = await t.done();
      seen.push(raw.toString('latin1'));
      const m = responsesTo(raw, ['GET'], true).responses[0];
      assert.deepEqual([m?.body.toString(), m?.framing], [`<${p} ${MARK} end>`, 'close']);
      await oneEach(h.px, [p]);
    }
  });

  it('response fields: every value with the secret scrubbed, twice on one connection; a name with it, and a field Connection names, dropped', async () => {
    const t = await openTunnel(h.px, port);
    t.write(Buffer.concat([request(port, 'GET', '/hdr/sc-6'), request(port, 'GET', '/hdr/sc-7', { headers: 'Connection: close\r\n' })]));
    const raw = await t.done();
    seen.push(raw.toString('latin1'));
    const r = responsesTo(raw, ['GET', 'GET'], true);
    assert.equal(r.problem, null);
    assert.equal(r.responses.length, 2);
    for (const m of r.responses) {
      assert.equal(m.body.toString(), 'ok');
      assert.deepEqual(header(m, 'set-cookie'), [`a=${MARK}; Path=/`, `b=${MARK}`]);
      assert.deepEqual(header(m, 'x-reflect'), [`caf\xe9 ${MARK} \xff`]);
      assert.deepEqual(header(m, 'x-hidden'), []);
      assert.equal(header(m, 'x-split').length, 2);
      assert.deepEqual(
        m.headers.filter(([k]) => k.toLowerCase().includes('fake_')),
        [],
      );
    }
    assert.ok(
      raw.includes(Buffer.from(`x-reflect: caf\xe9 ${MARK} \xff\r\n`, 'latin1')),
      'the obs-text bytes are relayed as they came (names lower-case, as the upstream client reads them)',
    );
    await oneEach(h.px, ['/hdr/sc-6', '/hdr/sc-7']);
  });

  it('no output of any party holds the secret; no upstream script failed', () => {
    assert.deepEqual(h.ups.errors(), []);
    assertNoSecrets([...turretOutputs(h.px.t), ...seen.map((s, i): [string, string] => [`client answer ${i}`, s])], { secret: SECRET });
  });
});
