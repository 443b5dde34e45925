/**
 * srvpin's bug 2: a request with an Expect value other than 100-continue inside
 * an intercepted tunnel was answered by the server itself (417, chunked, empty, no X-Turret-Error)
 * before the pipeline saw it, with no audit record. Fixed by srvrev (d55ca11, server.ts
 * onExpectation on 'checkExpectation'): 417 expectation_unsupported with X-Turret-Error,
 * Connection: close, one record. The proxy-port side: client-h1-pipeline-order.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useH1 } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';
import { byPath, openTunnel, recordsOf, request, responsesTo } from '../helpers/client-h1.js';

describe('Expect other than 100-continue inside an intercepted tunnel', () => {
  const h = useH1();
  let port = 0;
  before(async () => {
    port = (await h.ups.start(byPath())).tlsPort;
  });
  it('417 with X-Turret-Error and exactly one audit record', async () => {
    const t = await openTunnel(h.px, port);
    t.write(request(port, 'POST', '/echo/exp-odd', { headers: 'Expect: something-else\r\nConnection: close\r\n', body: 'abc' }));
    const r = responsesTo(await t.done(), ['POST'], true);
    assert.equal(r.responses[0]?.status, 417);
    assert.deepEqual(header(r.responses[0]!, 'x-turret-error'), ['expectation_unsupported'], 'X-Turret-Error on the 417');
    assert.deepEqual(header(r.responses[0]!, 'connection'), ['close']);
    const [rec] = await recordsOf(h.px, t);
    assert.equal(rec?.status, 417);
    assert.equal(rec?.code, 'expectation_unsupported');
  });
});
