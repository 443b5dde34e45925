/**
 * The same client-side HTTP/1.1 behaviour on the TLS side of the transparent listener
 * (transparent.ts): a redirected TLS connection (SNI up.turret.test, port 443) is decrypted and
 * served by the same server as an intercepted CONNECT tunnel, so what a client reads there is
 * pinned too: keep-alive heads, requests of every framing pipelined in one write, Connection:
 * close (answered, then closed, nothing after it forwarded), a parse error after the answers (its
 * own raw 400), a Host that is not the SNI (421). The agent is known by its source address. The
 * upstream listens on port 443 of a random loopback address (127.0.0.0/8), as in faults-tls.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { startTurret, type TurretProc } from '../helpers/turret.js';
import { header, type WireMessage } from '../helpers/http-wire.js';
import { pathOf, startH1Upstream, type H1Upstream } from '../helpers/h1-upstream.js';
import { awaitResponses, byPath, HOST, openTransparent, RAW_REFUSAL_FIELDS, request, responsesTo, type RawTunnel } from '../helpers/client-h1.js';
import { until } from '../helpers/turret.js';

const UPSTREAM = `127.${randomInt(2, 250)}.${randomInt(1, 250)}.${randomInt(2, 250)}`;

describe('client-side HTTP/1.1 on the transparent listener’s TLS side', () => {
  let t: TurretProc;
  let up: H1Upstream;
  let tport = 0;
  const seen: WireMessage[] = [];
  before(async () => {
    up = await startH1Upstream(byPath(undefined, seen), { tlsAt: { host: UPSTREAM, port: 443 } });
    t = await startTurret({
      rules: {
        'r.yaml': {
          agents: [{ name: 'redirected', sources: ['127.0.0.1/32'] }],
          rules: [{ name: 'up', methods: 'any', schemes: ['https'], hosts: [`${HOST}:*`], unsafe_addresses: [`${UPSTREAM}/32`] }],
          local: { [HOST]: UPSTREAM },
        },
      },
      args: ['--admin', 'off', '--transparent', '127.0.0.1:0'],
    });
    tport = Number(/"transparent":"[^"]*:(\d+)"/.exec(t.stderr())?.[1]);
    assert.ok(tport > 0, t.stderr());
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  /** The request records of the connection `c`, once there are `n` (then exactly `n`). */
  async function recordsOf(c: RawTunnel, n: number): Promise<Array<Record<string, unknown>>> {
    const now = (): Array<Record<string, unknown>> => t.audit().filter((r) => r.event === 'request' && r.client === c.client);
    await until(
      () => now().length >= n,
      () => `${n} records of ${c.client}: ${JSON.stringify(now())}`,
    );
    assert.equal(now().length, n, JSON.stringify(now()));
    return now();
  }

  it('GET, HEAD and a chunked POST in one write, then one more request kept alive: in order, keep-alive heads, one record each for the redirected agent', async () => {
    const c = await openTransparent(t.caDir, tport);
    const port = 443;
    c.write(
      Buffer.concat([
        request(port, 'GET', '/cl/tp-1', { host: HOST }),
        request(port, 'HEAD', '/cl/tp-2', { host: HOST }),
        request(port, 'POST', '/echo/tp-3', { host: HOST, headers: 'Transfer-Encoding: chunked\r\n', body: '2;x=y\r\nab\r\n1\r\nc\r\n0\r\nX-T: 1\r\n\r\n' }),
      ]),
    );
    const got = await awaitResponses(c, ['GET', 'HEAD', 'POST']);
    assert.deepEqual(
      got.map((m) => [m.status, m.body.toString(), header(m, 'connection')[0], header(m, 'keep-alive')[0]]),
      [
        [200, 'own:/cl/tp-1', 'keep-alive', 'timeout=30'],
        [200, '', 'keep-alive', 'timeout=30'],
        [200, 'POST /echo/tp-3 abc', 'keep-alive', 'timeout=30'],
      ],
    );
    c.write(request(port, 'GET', '/chunked/tp-4', { host: HOST, headers: 'Connection: close\r\n' }));
    const all = responsesTo(await c.done(), ['GET', 'HEAD', 'POST', 'GET'], true);
    assert.equal(all.problem, null);
    assert.equal(all.rest.length, 0);
    assert.deepEqual([all.responses[3]?.body.toString(), all.responses[3]?.framing, header(all.responses[3]!, 'connection')[0]], ['own:/chunked/tp-4', 'chunked', 'close']);
    // Pipelined exchanges are recorded as each ends, not in the order of the answers.
    const recs = (await recordsOf(c, 4)).sort((a, b) => String(a.path).localeCompare(String(b.path)));
    assert.deepEqual(
      recs.map((r) => [r.agent, r.method, r.path, r.status, r.code]),
      [
        ['redirected', 'GET', '/chunked/tp-4', 200, undefined],
        ['redirected', 'GET', '/cl/tp-1', 200, undefined],
        ['redirected', 'HEAD', '/cl/tp-2', 200, undefined],
        ['redirected', 'POST', '/echo/tp-3', 200, undefined],
      ],
    );
  });

  it('Connection: close with a request behind it: answered, closed; the one behind never forwarded (one bad_request record)', async () => {
    const c = await openTransparent(t.caDir, tport);
    c.write(Buffer.concat([request(443, 'GET', '/cl/tp-c1', { host: HOST, headers: 'Connection: close\r\n' }), request(443, 'GET', '/cl/tp-c2', { host: HOST })]));
    const all = responsesTo(await c.done(), ['GET', 'GET'], true);
    assert.deepEqual(
      all.responses.map((m) => m.body.toString()),
      ['own:/cl/tp-c1'],
    );
    assert.equal(all.rest.length, 0);
    const recs = await recordsOf(c, 2);
    assert.deepEqual(recs.map((r) => [r.path, r.status, r.code]).sort(), [
      [undefined, 400, 'bad_request'],
      ['/cl/tp-c1', 200, undefined],
    ]);
    assert.deepEqual(
      seen.map(pathOf).filter((p) => p.startsWith('/cl/tp-c')),
      ['/cl/tp-c1'],
    );
  });

  it('a parse error after the answers went out: a raw 400 bad_request, then the close; one record each', async () => {
    const c = await openTransparent(t.caDir, tport);
    c.write(request(443, 'GET', '/cl/tp-p1', { host: HOST }));
    const [first] = await awaitResponses(c, ['GET']);
    assert.equal(first?.body.toString(), 'own:/cl/tp-p1');
    c.write('GET /cl/tp-p2 HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n');
    const all = responsesTo(await c.done(), ['GET', 'GET'], true);
    assert.equal(all.problem, null);
    assert.equal(all.rest.length, 0);
    const refusal = all.responses[1]!;
    assert.equal(refusal.startLine, 'HTTP/1.1 400 Bad Request');
    assert.deepEqual(
      refusal.headers.map(([k]) => k.toLowerCase()),
      RAW_REFUSAL_FIELDS,
    );
    assert.deepEqual([header(refusal, 'x-turret-error')[0], header(refusal, 'connection')[0]], ['bad_request', 'close']);
    const recs = await recordsOf(c, 2);
    assert.deepEqual(
      recs.map((r) => [r.path, r.status, r.code]),
      [
        ['/cl/tp-p1', 200, undefined],
        [undefined, 400, 'bad_request'],
      ],
    );
  });

  it('a Host that is not the SNI: 421 misdirected_request, the close, nothing forwarded, one record', async () => {
    const c = await openTransparent(t.caDir, tport);
    c.write(request(443, 'GET', '/cl/tp-h1', { host: 'other.turret.test' }));
    const all = responsesTo(await c.done(), ['GET'], true);
    assert.deepEqual(
      all.responses.map((m) => [m.status, header(m, 'x-turret-error')[0], header(m, 'connection')[0]]),
      [[421, 'misdirected_request', 'close']],
    );
    const [rec] = await recordsOf(c, 1);
    assert.deepEqual([rec?.status, rec?.code, rec?.agent], [421, 'misdirected_request', 'redirected']);
    assert.equal(seen.filter((m) => pathOf(m) === '/cl/tp-h1').length, 0);
  });

  it('no upstream script failed', () => {
    assert.deepEqual(up.errors, []);
  });
});
