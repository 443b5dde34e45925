/**
 * The response head path as a client reads it through an intercepted tunnel (upstream-h1-call.ts
 * fieldsOf → stages/headers.ts clientResponseHeaders → the scrub of names and values →
 * listen/h1-head.ts): an upstream answers two requests on one keep-alive connection with the same
 * hostile head, the generated fake secret in field values raw and in encoded forms (base64 in a
 * Basic challenge, base64url, hex, upper case, every byte percent-escaped), under common names in
 * their usual spellings (the upstream client's table) and in odd case, repeated in several
 * spellings, under names that are Object.prototype's members; and hop-by-hop fields, fields the
 * Connection lines name, in odd case. Each of the two responses must come out the same: every
 * form replaced by the marker, the hop-by-hop and named fields gone, the repeated ones in order;
 * no output of any party holds any of the forms.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { useH1 } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';
import { pathOf, type H1Conn } from '../helpers/h1-upstream.js';
import { turretOutputs } from '../helpers/turret.js';
import { awaitResponses, oneEach, openTunnel, request } from '../helpers/client-h1.js';

const SECRET = `fake_${randomBytes(16).toString('hex')}`;
const MARK = '[REDACTED:secret:h1-token]';

/** The forms of the secret the head carries; none may reach any output. */
const FORMS: Record<string, string> = {
  raw: SECRET,
  upper: SECRET.toUpperCase(),
  base64: Buffer.from(SECRET).toString('base64'),
  base64url: Buffer.from(SECRET).toString('base64url').replace(/=+$/, ''),
  hex: Buffer.from(SECRET).toString('hex'),
  percent: [...Buffer.from(SECRET)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  basic: Buffer.from(`agent:${SECRET}`).toString('base64'),
};

const HEAD =
  'HTTP/1.1 200 OK\r\n' +
  'Content-Type: text/plain\r\n' +
  `Set-Cookie: s=${FORMS.raw}; Path=/\r\n` +
  `set-cookie: u=${FORMS.upper}\r\n` +
  `SET-COOKIE: h=${FORMS.hex}\r\n` +
  `Www-Authenticate: Basic ${FORMS.basic}\r\n` +
  `Location: https://cb.test/back?t=${FORMS.percent}&x=1\r\n` +
  `ETag: "${FORMS.base64url}"\r\n` +
  `X-B64: ${FORMS.base64}\r\n` +
  `Constructor: ${FORMS.raw}\r\n` +
  `__proto__: p ${FORMS.raw}\r\n` +
  'Vary: Accept\r\n' +
  'VARY: Origin\r\n' +
  'CONNECTION: X-Named, Keep-Alive\r\n' +
  'connection: x-OTHER\r\n' +
  `x-NAMED: ${FORMS.raw}\r\n` +
  `X-Other: ${FORMS.hex}\r\n` +
  'KEEP-ALIVE: timeout=17\r\n' +
  'Proxy-Connection: keep-alive\r\n' +
  'Upgrade: h2c\r\n' +
  'Te: trailers\r\n' +
  'Content-Length: 2\r\n' +
  '\r\n' +
  'ok';

describe('response heads: two on one keep-alive connection, every secret form in them scrubbed', () => {
  const h = useH1({ secret: true, env: { TEST_H1_TOKEN: SECRET } });
  let port = 0;
  let conns = 0;
  const served: string[] = [];
  const seen: string[] = [];
  before(async () => {
    const script = async (c: H1Conn): Promise<void> => {
      conns++;
      for (let i = 0; i < 4; i++) {
        served.push(pathOf(await c.request(i)));
        await c.send(HEAD);
      }
    };
    port = (await h.ups.start(script)).tlsPort;
  });

  it('both responses: each form replaced by the marker, hop-by-hop and named fields dropped, repeated fields in order', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'GET', '/head/1'));
    const [first] = await awaitResponses(t, ['GET']);
    t.write(request(port, 'GET', '/head/2'));
    const both = await awaitResponses(t, ['GET', 'GET']);
    t.s.end();
    seen.push((await t.done()).toString('latin1'));
    assert.deepEqual(served, ['/head/1', '/head/2']);
    assert.equal(conns, 1, 'one upstream connection carried both');
    assert.ok(first);
    for (const m of both) {
      assert.equal(m.status, 200);
      assert.equal(m.body.toString(), 'ok');
      // The Basic challenge's base64 keeps only the few edge characters that mix in `agent:`.
      const basic = /^Basic [A-Za-z0-9+/]{0,12}\[REDACTED:secret:h1-token\][A-Za-z0-9+/=]{0,4}$/;
      assert.deepEqual(
        m.headers.filter(([k]) => k.toLowerCase() !== 'date').map(([k, v]) => [k, k === 'www-authenticate' && basic.test(v) ? 'Basic <marked>' : v]),
        [
          ['content-type', 'text/plain'],
          ['set-cookie', `s=${MARK}; Path=/`],
          ['set-cookie', `u=${MARK}`],
          ['set-cookie', `h=${MARK}`],
          ['www-authenticate', 'Basic <marked>'],
          ['location', `https://cb.test/back?t=${MARK}&x=1`],
          ['etag', `"${MARK}"`],
          ['x-b64', MARK],
          ['constructor', MARK],
          ['__proto__', `p ${MARK}`],
          ['vary', 'Accept'],
          ['vary', 'Origin'],
          ['content-length', '2'],
          ['Connection', 'keep-alive'],
          ['Keep-Alive', 'timeout=30'],
        ],
      );
      assert.equal(header(m, 'date').length, 1);
    }
    const recs = await oneEach(h.px, ['/head/1', '/head/2']);
    assert.deepEqual(
      recs.map((x) => x.status),
      [200, 200],
    );
  });

  it('no output of any party holds any form of the secret; no upstream script failed', () => {
    assert.deepEqual(h.ups.errors(), []);
    const outputs = [...turretOutputs(h.px.t), ...seen.map((s, i): [string, string] => [`client bytes ${i}`, s])];
    assert.ok(seen.length > 0 && outputs.length > seen.length);
    for (const [name, text] of outputs) {
      for (const [form, value] of Object.entries(FORMS)) assert.ok(!text.includes(value), `${name} holds the secret's ${form} form`);
      assert.ok(!text.toLowerCase().includes(SECRET.toLowerCase()), `${name} holds the secret in some case`);
    }
  });
});
