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
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useH1 } from '../helpers/h1-proxy.js';
import { until } from '../helpers/turret.js';
import { byPath, expectRawRefusal, Gates, openTunnel, recordsOf, request, responsesTo } from '../helpers/client-h1.js';

describe('client limits inside an intercepted tunnel: review findings', () => {
  const h = useH1({ args: ['--limit', 'client_headers_timeout=1s', '--limit', 'client_request_timeout=1s'] });
  let port = 0;
  const gates = new Gates();
  before(async () => {
    port = (await h.ups.start(byPath(gates))).tlsPort;
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
});
