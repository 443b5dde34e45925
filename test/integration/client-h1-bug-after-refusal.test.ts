/**
 * srvpin's bug 1, fixed by srvfix: a complete request pipelined (in the same write) behind a
 * request Turret refuses with Connection: close (400 bad_request from validate, 421
 * misdirected_request, 400 bad_target) used to run through the pipeline anyway, forwarded to the
 * upstream in some runs and always recorded 499 client_closed. Now it waits its turn behind the
 * refusal (connection.ts waitTurn) and, the refusal having closed the connection, is bytes after a
 * close: never forwarded, no record of its own. The proxy-port side: client-h1-pipeline-order.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useH1 } from '../helpers/h1-proxy.js';
import type { WireMessage } from '../helpers/http-wire.js';
import { pathOf } from '../helpers/h1-upstream.js';
import { byPath, HOST, openTunnel, recordsOf, request, responsesTo } from '../helpers/client-h1.js';

const CASES: Array<[string, (port: number) => Buffer, number]> = [
  ['two Host fields (400 bad_request)', (p) => request(p, 'GET', '/cl/ar-a', { headers: `Host: ${HOST}:${p}\r\n` }), 400],
  [
    'Transfer-Encoding: gzip, chunked (400 bad_request)',
    (p) => request(p, 'POST', '/echo/ar-b', { headers: 'Transfer-Encoding: gzip, chunked\r\n', body: '3\r\nabc\r\n0\r\n\r\n' }),
    400,
  ],
  ['a Host naming another host (421)', (p) => request(p, 'GET', '/cl/ar-c', { host: `other.turret.test:${p}` }), 421],
  ['OPTIONS * (400 bad_target)', (p) => request(p, 'OPTIONS', '*'), 400],
];

describe('a request pipelined behind a refusal that closes the connection', () => {
  const h = useH1();
  let port = 0;
  const seen: WireMessage[] = [];
  before(async () => {
    port = (await h.ups.start(byPath(undefined, seen))).tlsPort;
  });
  for (const [name, bytes, status] of CASES) {
    it(`${name}: the refusal, the close; the request behind it never forwarded, no record of its own (5 rounds)`, async () => {
      for (let i = 0; i < 5; i++) {
        const t = await openTunnel(h.px, port);
        const after = `/cl/after-${status}-${i}-${name.length}`;
        t.write(Buffer.concat([bytes(port), request(port, 'POST', after, { body: 'side effect' })]));
        const r = responsesTo(await t.done(), ['GET', 'GET'], true);
        assert.deepEqual(
          r.responses.map((m) => m.status),
          [status],
        );
        // The next tunnel is served: by then the upstream has had whatever the first one sent.
        const n = await openTunnel(h.px, port);
        n.write(request(port, 'GET', `/cl/next-${i}`, { headers: 'Connection: close\r\n' }));
        await n.done();
        await recordsOf(h.px, n);
        assert.deepEqual(
          seen.map(pathOf).filter((p) => p === after),
          [],
          'forwarded behind a closing refusal',
        );
        const recs = await recordsOf(h.px, t, 1);
        assert.equal(recs[0]?.status, status, JSON.stringify(recs));
      }
    });
  }
});
