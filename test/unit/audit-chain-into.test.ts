/**
 * The file log's chain line is built in two halves (src/audit/line.ts): the event loop serialises
 * the record (chainBody), the writer thread adds seq and prev and hashes (chainInto). The two
 * together must give exactly the bytes and hash formatChainLine gives, for hostile text too
 * (multi-byte UTF-8, lone surrogates, control characters, quotes, a huge seq), and
 * chainLineBytes must be the line's exact length (the hand-over ring's limit is on it).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { chainBody, chainInto, chainLineBytes, formatChainLine, GENESIS_PREV, parseChainLine } from '../../src/audit/line.js';
import type { AuditRecord } from '../../src/audit/record.js';

const texts = ['plain', 'é€😀', 'lone \ud800 and \udfff', 'ctl \u0000\u0001\n\r\t\u001f\u007f', 'quote " back \\ slash', '\u2028\u2029', 'x'.repeat(5000)];

function record(i: number): AuditRecord {
  const t = texts[i % texts.length]!;
  return {
    time: new Date(1_764_500_000_000 + i).toISOString(),
    event: 'request',
    outcome: 'completed',
    agent: i % 2 ? t : null,
    method: 'GET',
    scheme: 'https',
    host: `h${t}`,
    port: 443,
    path: `/p/${t}?q=${t}`,
    rule: null,
    reason: t,
    status: 200,
    duration_ms: i / 7,
    secrets: i % 3 ? [t, 'b'] : undefined,
    fingerprints: i % 3 ? { [t]: 'ff' } : undefined,
    request_id: randomBytes(8).toString('hex'),
  };
}

test('chainInto over chainBody gives formatChainLine byte for byte, chained', () => {
  let prev = GENESIS_PREV;
  let big = Buffer.alloc(0);
  for (const [i, seq] of [1, 2, 9, 10, 99, 100, 999, 1000, 12345, 999999999, 1e9, 2 ** 40, 1e15 - 1, 1e15, Number.MAX_SAFE_INTEGER].entries()) {
    for (let k = 0; k < texts.length * 2; k++) {
      const rec = record(i * 100 + k);
      const want = formatChainLine(rec, seq, prev);
      const body = Buffer.from(chainBody(rec));
      const n = chainLineBytes(body.length, seq);
      if (big.length < n + 4) big = Buffer.alloc(n + 4);
      big.fill(0x2a);
      const got = chainInto(big, 3, body, seq, prev);
      assert.equal(got.end - 3, n);
      assert.equal(big.subarray(3, got.end).toString('utf8'), want.line);
      assert.equal(Buffer.byteLength(want.line), n);
      assert.equal(got.hash, want.hash);
      assert.equal(big[got.end], 0x2a, 'nothing written past the line');
      const parsed = parseChainLine(big.subarray(3, got.end - 1));
      assert.ok(parsed.ok && parsed.intact && parsed.prev === prev && parsed.seq === seq);
      prev = got.hash;
    }
  }
});
