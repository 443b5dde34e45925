/**
 * A request pipelined behind others starts its exchange only once the responses ahead of it have
 * closed (connection.ts waitTurn), on both servers: Turret's own inside intercepted tunnels and
 * the proxy port's http.Server. What that rule costs and bounds:
 *
 * - a client pipelining 150 requests of 2 KB behind a held one: the connection stops reading once
 *   MAX_WAITING wait (the debug lines HOLDS / RESUMES, with the most that waited at once), and
 *   every request is answered in order with one record once the first is released;
 * - on the proxy port, a request pipelined behind a refusal that closes the connection is never
 *   forwarded and leaves no record (the tunnel side: client-h1-bug-after-refusal);
 * - an Expect other than 100-continue on the proxy port: 417 expectation_unsupported with one
 *   record (srvrev's fix; the tunnel side: client-h1-bug-expect), and a request pipelined behind
 *   it is bytes after its close.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { useH1 } from '../helpers/h1-proxy.js';
import { header, parseResponses, type WireMessage } from '../helpers/http-wire.js';
import { pathOf } from '../helpers/h1-upstream.js';
import { until } from '../helpers/turret.js';
import { byPath, Gates, HOST, openTunnel, request, responsesTo } from '../helpers/client-h1.js';

const HOLDS = 'a connection stops reading: too many pipelined requests wait their turn';
const RESUMES = 'a connection reads again: its pipelined requests are being answered';
/**
 * connection.ts MAX_WAITING, plus what two reads of the TLS socket (64 KB each: what one TCP read
 * decrypts is all parsed before the pause bites) can hold of 2 KB requests. Measured: 16 + one read.
 */
const BOUND = 16 + 64;

describe('the order of pipelined exchanges', () => {
  const h = useH1({ env: { TURRET_LOG_LEVEL: 'debug' } });
  const gates = new Gates();
  const seen: WireMessage[] = [];
  let tlsPort = 0;
  let port = 0;
  before(async () => {
    const up = await h.ups.start(byPath(gates, seen));
    tlsPort = up.tlsPort;
    port = up.port;
  });

  it('150 requests of 2 KB pipelined behind a held one: reading stops past MAX_WAITING, then all are answered in order, one record each', async () => {
    const n = 150;
    const pad = `X-Pad: ${'p'.repeat(2000)}\r\n`;
    const t = await openTunnel(h.px, tlsPort);
    const reqs = [request(tlsPort, 'GET', '/slow/fl-0')];
    for (let i = 1; i <= n; i++) reqs.push(request(tlsPort, 'GET', `/cl/fl-${i}`, { headers: pad + (i === n ? 'Connection: close\r\n' : '') }));
    const holdsFrom = h.px.t.stderr().split(HOLDS).length;
    t.write(Buffer.concat(reqs));
    await until(() => gates.holds('/slow/fl-0') && h.px.t.stderr().split(HOLDS).length > holdsFrom, 'the first request held and the connection holding');
    assert.deepEqual(
      seen.map(pathOf).filter((p) => p.startsWith('/cl/fl-')),
      [],
      'nothing behind the held request started',
    );
    gates.release('/slow/fl-0');
    const r = responsesTo(await t.done(60_000), new Array<string>(n + 1).fill('GET'), true);
    assert.equal(r.problem, null);
    assert.deepEqual(
      r.responses.map((m) => m.body.toString()),
      ['own:/slow/fl-0', ...Array.from({ length: n }, (_, i) => `own:/cl/fl-${i + 1}`)],
    );
    // Every time reading resumed, the most requests that had waited at once stayed bounded.
    const peaks = [...h.px.t.stderr().matchAll(new RegExp(`${RESUMES}.*?"peak":(\\d+)`, 'g'))].map((m) => Number(m[1]));
    assert.notEqual(peaks.length, 0, 'reading resumed');
    for (const p of peaks) assert.ok(p <= BOUND, `${p} requests waited at once (bound ${BOUND})`);
    const mine = (): number => h.px.t.audit().filter((x) => x.event === 'request' && /^\/(slow|cl)\/fl-/.test(String(x.path))).length;
    await until(() => mine() >= n + 1, 'a record for each');
    assert.equal(mine(), n + 1);
  });

  /** Raw bytes on the proxy port (absolute form), everything read until Turret closes. */
  const onProxyPort = (bytes: string): Promise<{ got: Buffer; client: string }> =>
    new Promise((resolve, reject) => {
      const s = net.connect(h.px.t.port, '127.0.0.1');
      const got: Buffer[] = [];
      let client = '';
      s.on('connect', () => (client = `${s.localAddress}:${s.localPort}`));
      s.on('data', (d: Buffer) => got.push(d));
      s.on('error', reject);
      s.on('close', () => resolve({ got: Buffer.concat(got), client }));
      s.write(bytes, 'latin1');
    });
  /** The request records of a proxy-port client (a refusal before the target is known has no path). */
  const recordsOfClient = async (client: string, n: number): Promise<Array<Record<string, unknown>>> => {
    const now = (): Array<Record<string, unknown>> => h.px.t.audit().filter((r) => r.event === 'request' && r.client === client);
    await until(() => now().length >= n, `${n} records of ${client}`);
    return now();
  };
  const abs = (method: string, p: string, fields: string, body = ''): string =>
    `${method} http://${HOST}:${port}${p} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nProxy-Authorization: ${h.px.auth}\r\n${fields}\r\n${body}`;

  it('proxy port: a POST pipelined behind a TE: gzip, chunked refusal is never forwarded and has no record (5 rounds)', async () => {
    for (let i = 0; i < 5; i++) {
      const refused = `/echo/pp-ref-${i}`;
      const after = `/cl/pp-after-${i}`;
      const { got, client } = await onProxyPort(
        abs('POST', refused, 'Transfer-Encoding: gzip, chunked\r\n', '3\r\nabc\r\n0\r\n\r\n') + abs('POST', after, 'Content-Length: 11\r\n', 'side effect'),
      );
      const r = parseResponses(got, { closed: true });
      assert.deepEqual(
        r.responses.map((m) => m.status),
        [400],
      );
      assert.deepEqual(header(r.responses[0]!, 'x-turret-error'), ['bad_request']);
      // A next exchange through the same upstream: by its record, the upstream had the first's bytes.
      const next = await h.px.send(port, `/cl/pp-next-${i}`);
      assert.equal(next.final?.status, 200);
      await h.px.record(`/cl/pp-next-${i}`);
      assert.deepEqual(
        seen.map(pathOf).filter((p) => p === after || p === refused),
        [],
        'forwarded behind a closing refusal',
      );
      const recs = await recordsOfClient(client, 1);
      assert.deepEqual(
        recs.map((x) => [x.status, x.code]),
        [[400, 'bad_request']],
        'one record: the refusal, none for the bytes after it',
      );
    }
  });

  it('proxy port: Expect other than 100-continue is refused 417 expectation_unsupported, with one record; nothing forwarded, the request behind it neither', async () => {
    const p = '/echo/pp-expect';
    const after = '/cl/pp-expect-after';
    const { got, client } = await onProxyPort(abs('POST', p, 'Expect: something-else\r\nContent-Length: 3\r\n', 'abc') + abs('GET', after, ''));
    const r = parseResponses(got, { closed: true });
    assert.deepEqual(
      r.responses.map((m) => m.status),
      [417],
    );
    assert.deepEqual(header(r.responses[0]!, 'x-turret-error'), ['expectation_unsupported']);
    assert.deepEqual(header(r.responses[0]!, 'connection'), ['close']);
    const recs = await recordsOfClient(client, 1);
    assert.deepEqual(
      recs.map((x) => [x.status, x.code, x.method]),
      [[417, 'expectation_unsupported', 'POST']],
    );
    const next = await h.px.send(port, '/cl/pp-expect-next');
    assert.equal(next.final?.status, 200);
    await h.px.record('/cl/pp-expect-next');
    assert.deepEqual(
      seen.map(pathOf).filter((x) => x === p || x === after),
      [],
    );
    assert.equal(h.px.t.audit().filter((x) => x.event === 'request' && x.client === client).length, 1, 'no record for the request behind the 417');
  });
});
