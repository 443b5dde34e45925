/**
 * Findings of the attack review of Turret's own HTTP/1.1 server on intercepted connections
 * (srvrev): each test failed before its fix. Raw TLS client inside CONNECT, real turret with small
 * client limits, scripted upstream (test/helpers/client-h1.ts).
 *
 * - client_request_timeout is the client's time to send its request, not the upstream's time to
 *   answer: a GET whose answer comes after the limit passed is answered, and its record is the
 *   upstream's. The slow-client guard (limits.ts) cleared its mark on the request's 'end', which a
 *   body-less request nobody reads never emits before its response closes, so such a request was
 *   cut and recorded 408 client_timeout, "the client did not send the whole request in time".
 * - an `Expect` other than 100-continue is answered by the server layer before the pipeline runs:
 *   it was a bare 417 with no audit record (node:http's and h1-server.ts's default). It is now
 *   Turret's refusal, 417 expectation_unsupported, with its one record, nothing forwarded, and the
 *   connection closed (its body was never read), inside a tunnel and on the proxy port.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useH1 } from '../helpers/h1-proxy.js';
import { until } from '../helpers/turret.js';
import { header, type WireMessage } from '../helpers/http-wire.js';
import { pathOf } from '../helpers/h1-upstream.js';
import { byPath, expectRawRefusal, Gates, openTunnel, recordsOf, request, responsesTo } from '../helpers/client-h1.js';

describe('client limits inside an intercepted tunnel: review findings', () => {
  const h = useH1({ args: ['--limit', 'client_headers_timeout=1s', '--limit', 'client_request_timeout=1s'] });
  let port = 0;
  const gates = new Gates();
  const seen: WireMessage[] = [];
  let plainPort = 0;
  before(async () => {
    const up = await h.ups.start(byPath(gates, seen));
    port = up.tlsPort;
    plainPort = up.port;
  });

  it('a whole GET whose upstream answers after client_request_timeout: answered 200, one completed record (not 408 client_timeout)', async () => {
    const p = '/slow/review-late-answer';
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'GET', p, { headers: 'Connection: close\r\n' }));
    await until(() => gates.holds(p), `the upstream to hold ${p}`);
    // A silent connection opened now is answered 408 once client_headers_timeout (1 s) passed since
    // it opened: by then the GET above has waited longer than client_request_timeout (1 s), and the
    // guard's sweep that answers the silent one has looked at the GET's connection too.
    const silent = await openTunnel(h.px, port);
    await expectRawRefusal(silent, 'HTTP/1.1 408 Request Timeout', 'client_timeout', /client_headers_timeout/);
    assert.equal(t.closed(), false, 'the GET’s connection is still open');
    gates.release(p);
    const r = responsesTo(await t.done(), ['GET'], true);
    assert.equal(r.problem, null);
    assert.deepEqual(
      r.responses.map((m) => [m.status, m.body.toString()]),
      [[200, `own:${p}`]],
    );
    const [rec] = await recordsOf(h.px, t);
    assert.deepEqual([rec?.path, rec?.status, rec?.code, rec?.outcome], [p, 200, undefined, 'completed']);
  });

  it('Expect: teapot inside a tunnel: 417 expectation_unsupported with X-Turret-Error, then the close; one record; nothing forwarded', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'POST', '/echo/review-expect', { headers: 'Expect: teapot\r\n', body: 'abc' }));
    const r = responsesTo(await t.done(), ['POST'], true);
    assert.equal(r.problem, null);
    assert.equal(r.rest.length, 0, 'nothing after the refusal');
    assert.deepEqual(
      r.responses.map((m) => [m.status, header(m, 'x-turret-error'), header(m, 'connection')]),
      [[417, ['expectation_unsupported'], ['close']]],
    );
    const recs = await recordsOf(h.px, t);
    assert.deepEqual(
      recs.map((x) => [x.method, x.status, x.code, x.outcome, typeof x.tunnel_id]),
      [['POST', 417, 'expectation_unsupported', 'denied', 'string']],
    );
    assert.deepEqual(
      seen.filter((m) => pathOf(m).includes('review-') && pathOf(m) !== '/slow/review-late-answer'),
      [],
    );
  });

  it('Expect: teapot on the proxy port: 417 expectation_unsupported, one record, nothing forwarded', async () => {
    const before = h.px.t.audit().length;
    const r = await h.px.send(plainPort, '/echo/review-expect-plain', { method: 'POST', headers: 'Expect: teapot\r\n', body: 'abc' });
    assert.equal(r.final?.status, 417);
    assert.deepEqual(header(r.final!, 'x-turret-error'), ['expectation_unsupported']);
    await until(
      () =>
        h.px.t
          .audit()
          .slice(before)
          .some((x) => x.code === 'expectation_unsupported'),
      'the record',
    );
    // This exchange's records (the previous test's tunnel may record its close in the meantime).
    assert.deepEqual(
      h.px.t
        .audit()
        .slice(before)
        .filter((x) => x.event !== 'tunnel_close')
        .map((x) => [x.event, x.method, x.status, x.code]),
      [['request', 'POST', 417, 'expectation_unsupported']],
    );
    assert.deepEqual(
      seen.filter((m) => pathOf(m) === '/echo/review-expect-plain'),
      [],
    );
  });
});
