/**
 * The small-body path's own length check (stages/small-body.ts): a body that differs from its
 * Content-Length is the upstream's protocol fault, whatever maps the error afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { respondSmall, type SmallBody } from '../../src/proxy/stages/small-body.js';
import { upstreamError } from '../../src/proxy/stages/respond-upstream.js';
import { isTurretError } from '../../src/core/errors.js';
import type { Exchange } from '../../src/proxy/stages/exchange.js';

function small(length: number): SmallBody {
  return { statusCode: 200, headers: [['content-length', String(length)]], length, scrubber: null, maxScan: null, count: () => {}, mapError: (_x, e) => upstreamError(e) };
}

test('a whole body shorter or longer than its Content-Length is upstream_protocol_error, and nothing is written', () => {
  let wrote = 0;
  const res = { writeHead: () => wrote++, end: () => wrote++, write: () => wrote++ };
  const x = { res } as unknown as Exchange;
  for (const [body, length] of [
    ['abc', 5],
    ['EVIL!ok', 2],
  ] as const) {
    assert.throws(
      () => respondSmall(x, { whole: Buffer.from(body) }, null, small(length)),
      (e: unknown) => isTurretError(e) && e.code === 'upstream_protocol_error' && /Content-Length/.test(e.message),
    );
  }
  assert.equal(wrote, 0);
});
