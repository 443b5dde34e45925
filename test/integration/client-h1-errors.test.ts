/**
 * Every refusal a client can provoke on the decrypted connection of an intercepted tunnel, one
 * hostile request per connection: the exact status, `X-Turret-Error`, the head Turret writes
 * (field order; `Date` only when the answer goes through the exchange's response, none when the
 * parser refused the bytes and the answer is written raw), `Connection: close` and the close,
 * nothing after it, nothing at the upstream, and exactly one audit record with the right code,
 * method and path (none when the parser never produced a request). Raw TLS client inside CONNECT,
 * real turret (test/helpers/client-h1.ts).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useH1 } from '../helpers/h1-proxy.js';
import { header, type WireMessage } from '../helpers/http-wire.js';
import { pathOf } from '../helpers/h1-upstream.js';
import { awaitResponses, byPath, HOST, RAW_REFUSAL_FIELDS, openTunnel, recordsOf, request, responsesTo } from '../helpers/client-h1.js';

/** Fields of an answer written by the exchange's response (respond.ts sendError through node:http). */
const VIA_RES = ['content-type', 'content-length', 'x-turret-error', 'cache-control', 'connection', 'date'];
/** A policy refusal (403) keeps the connection: node:http's keep-alive fields after Date. */
const VIA_RES_KEEP = ['content-type', 'content-length', 'x-turret-error', 'cache-control', 'date', 'connection', 'keep-alive'];
/** Fields of an answer written raw to the socket (sendErrorRaw: parser errors, upgrades, CONNECT). */
const RAW = RAW_REFUSAL_FIELDS;

interface Case {
  name: string;
  bytes: (port: number) => Buffer;
  status: number;
  code: string;
  fields: string[];
  /** What the record says: method and path (undefined when absent). */
  method?: string;
  path?: string;
  /** The start of the body's reason line. */
  reason: RegExp;
  /** A policy refusal: the connection stays open and serves the next request. */
  keep?: boolean;
}

const h2 = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';

/** Bytes llhttp itself refuses: answered raw (no Date), recorded without method or path. */
function malformed(name: string, bytes: (port: number) => Buffer): Case {
  return { name, bytes, status: 400, code: 'bad_request', fields: RAW, reason: /^Reason: the request is not valid HTTP\/1\.1$/m };
}

const CASES: Case[] = [
  malformed('Transfer-Encoding with Content-Length', (p) =>
    request(p, 'POST', '/echo/er-1', { headers: 'Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', body: '3\r\nabc\r\n0\r\n\r\n' }),
  ),
  malformed('a field name with a space', (p) => request(p, 'GET', '/cl/er-2', { headers: 'Bad Header: y\r\n' })),
  malformed('a lower-case method', (p) => request(p, 'get', '/cl/er-3')),
  malformed('an unknown method', (p) => request(p, 'FOO', '/cl/er-4')),
  malformed('an authority-form GET', (p) => request(p, 'GET', `${HOST}:${p}`)),
  {
    name: 'HTTP/2.0 on the request line',
    bytes: (p) => request(p, 'GET', '/cl/er-6', { version: '2.0' }),
    status: 400,
    code: 'bad_request',
    fields: VIA_RES,
    method: 'GET',
    reason: /^Reason: HTTP\/2\.0 is not supported here/m,
  },
  {
    name: 'no Host',
    bytes: (p) => request(p, 'GET', '/cl/er-7', { host: null }),
    status: 400,
    code: 'bad_request',
    fields: VIA_RES,
    method: 'GET',
    reason: /^Reason: an HTTP\/1\.1 request needs a Host header$/m,
  },
  {
    name: 'two Host fields',
    bytes: (p) => request(p, 'GET', '/cl/er-8', { headers: `Host: ${HOST}:${p}\r\n` }),
    status: 400,
    code: 'bad_request',
    fields: VIA_RES,
    method: 'GET',
    reason: /^Reason: the request has more than one Host header$/m,
  },
  {
    name: 'Transfer-Encoding: gzip, chunked',
    bytes: (p) => request(p, 'POST', '/echo/er-9', { headers: 'Transfer-Encoding: gzip, chunked\r\n', body: '3\r\nabc\r\n0\r\n\r\n' }),
    status: 400,
    code: 'bad_request',
    fields: VIA_RES,
    method: 'POST',
    reason: /^Reason: the only Transfer-Encoding accepted is "chunked"$/m,
  },
  {
    name: 'a bad chunk size after a good head',
    bytes: (p) => request(p, 'POST', '/echo/er-10', { headers: 'Transfer-Encoding: chunked\r\n', body: 'zz\r\nabc\r\n0\r\n\r\n' }),
    status: 400,
    code: 'bad_request',
    fields: VIA_RES,
    method: 'POST',
    path: '/echo/er-10',
    reason: /^Reason: the request is not valid HTTP\/1\.1$/m,
  },
  {
    name: 'a Host naming another host',
    bytes: (p) => request(p, 'GET', '/cl/er-11', { host: `other.turret.test:${p}` }),
    status: 421,
    code: 'misdirected_request',
    fields: VIA_RES,
    method: 'GET',
    reason: /^Reason: Host other\.turret\.test:\d+ does not match the tunnel to up\.turret\.test:\d+$/m,
  },
  {
    name: 'a Host without the tunnel’s port',
    bytes: (p) => request(p, 'GET', '/cl/er-12', { host: HOST }),
    status: 421,
    code: 'misdirected_request',
    fields: VIA_RES,
    method: 'GET',
    reason: /^Reason: Host up\.turret\.test:443 does not match the tunnel/m,
  },
  {
    name: 'an absolute-form target naming another host',
    bytes: (p) => request(p, 'GET', `https://other.turret.test:${p}/cl/er-13`),
    status: 421,
    code: 'misdirected_request',
    fields: VIA_RES,
    method: 'GET',
    reason: /^Reason: the request URL names other\.turret\.test:\d+ inside a tunnel/m,
  },
  {
    name: 'an absolute-form http:// target inside TLS',
    bytes: (p) => request(p, 'GET', `http://${HOST}:${p}/cl/er-14`),
    status: 421,
    code: 'misdirected_request',
    fields: VIA_RES,
    method: 'GET',
    reason: /^Reason: the request URL names up\.turret\.test:\d+ inside a tunnel/m,
  },
  {
    name: 'OPTIONS *',
    bytes: (p) => request(p, 'OPTIONS', '*'),
    status: 400,
    code: 'bad_target',
    fields: VIA_RES,
    method: 'OPTIONS',
    reason: /^Reason: a proxy request must use an absolute URL/m,
  },
  {
    name: 'TRACE',
    bytes: (p) => request(p, 'TRACE', '/cl/er-16'),
    status: 403,
    code: 'method_forbidden',
    fields: VIA_RES_KEEP,
    method: 'TRACE',
    path: '/cl/er-16',
    reason: /^Reason: TRACE is never allowed through the proxy$/m,
    keep: true,
  },
  {
    name: 'Upgrade: h2c',
    bytes: (p) => request(p, 'GET', '/cl/er-17', { headers: h2 }),
    status: 400,
    code: 'bad_request',
    fields: RAW,
    method: 'GET',
    reason: /^Reason: only WebSocket upgrades are supported$/m,
  },
  {
    name: 'CONNECT inside the tunnel',
    bytes: () => Buffer.from('CONNECT other.turret.test:443 HTTP/1.1\r\nHost: other.turret.test:443\r\n\r\n'),
    status: 403,
    code: 'method_forbidden',
    fields: RAW,
    method: 'CONNECT',
    reason: /^Reason: CONNECT inside an intercepted tunnel is never allowed$/m,
  },
];

describe('refusals on the decrypted connection: status, X-Turret-Error, head, close (or keep-alive for policy), one record', () => {
  const h = useH1();
  let port = 0;
  const seen: WireMessage[] = [];
  before(async () => {
    port = (await h.ups.start(byPath(undefined, seen))).tlsPort;
  });

  for (const c of CASES) {
    it(`${c.name}: ${c.status} ${c.code}`, async () => {
      const before = seen.length;
      const t = await openTunnel(h.px, port);
      t.write(c.bytes(port));
      // A refusal that closes is the last thing on the connection; a policy refusal keeps it for the next request.
      if (c.keep) {
        await awaitResponses(t, ['GET']);
        t.write(request(port, 'GET', '/cl/next-after-policy', { headers: 'Connection: close\r\n' }));
      }
      const raw = await t.done();
      const r = responsesTo(raw, ['GET', 'GET'], true);
      assert.equal(r.problem, null, raw.toString('latin1'));
      assert.equal(r.responses.length, c.keep ? 2 : 1, raw.toString('latin1'));
      assert.equal(r.rest.length, 0, 'nothing after the last answer');
      if (c.keep) assert.equal(r.responses[1]?.body.toString(), 'own:/cl/next-after-policy');
      const m = r.responses[0]!;
      assert.equal(m.status, c.status, raw.toString('latin1'));
      assert.deepEqual(
        m.headers.map(([k]) => k.toLowerCase()),
        c.fields,
      );
      assert.deepEqual(header(m, 'x-turret-error'), [c.code]);
      assert.match(header(m, 'connection')[0] ?? '', c.keep ? /^keep-alive$/ : /^close$/i);
      assert.deepEqual(header(m, 'cache-control'), ['no-store']);
      assert.equal(m.framing, 'length');
      const body = m.body.toString();
      assert.match(body, /^Turret refused /);
      assert.match(body, c.reason);
      assert.match(body, new RegExp(`^Code: ${c.code}$`, 'm'));
      const [rec] = await recordsOf(h.px, t, c.keep ? 2 : 1);
      assert.deepEqual([rec?.status, rec?.code, rec?.outcome, rec?.method, rec?.path], [c.status, c.code, 'denied', c.method, c.path]);
      assert.equal(typeof rec?.tunnel_id, 'string', 'recorded inside its tunnel');
      assert.deepEqual(seen.slice(before).map(pathOf), c.keep ? ['/cl/next-after-policy'] : [], 'nothing refused reached the upstream');
    });
  }

  it('no upstream script failed, and no refused request ever reached the upstream', () => {
    assert.deepEqual(h.ups.errors(), []);
    assert.deepEqual(
      seen.map(pathOf).filter((p) => p.includes('/er-')),
      [],
    );
  });
});
