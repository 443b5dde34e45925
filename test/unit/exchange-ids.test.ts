/**
 * Exchange and tunnel ids (proxy/stages/exchange.ts IdSource): the per-process prefix and the
 * counter in 8 hex digits, whatever the shortcut that keeps the first six digits for 256 ids;
 * a wrapped counter takes a new prefix, so no id repeats.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IdSource, newId } from '../../src/proxy/stages/exchange.js';

const prefixes = (): (() => string) => {
  let n = 0;
  return () => ['aaaaaaaa', 'bbbbbbbb', 'cccccccc'][n++]!;
};

test('every id is the prefix and the counter in 8 hex digits, across many 256-id blocks', () => {
  const ids = new IdSource(0, prefixes());
  for (let c = 1; c <= 5000; c++) assert.equal(ids.next(), `aaaaaaaa${c.toString(16).padStart(8, '0')}`);
  const high = new IdSource(0x00fffe00, prefixes());
  for (let c = 0x00fffe01; c <= 0x01000300; c++) assert.equal(high.next(), `aaaaaaaa${c.toString(16).padStart(8, '0')}`);
});

test('the counter wraps to a new prefix and never repeats an id', () => {
  const ids = new IdSource(0xfffffe00, prefixes());
  const seen = new Set<string>();
  for (let i = 0; i < 0x400; i++) {
    const id = ids.next();
    assert.ok(!seen.has(id), id);
    seen.add(id);
    const c = (0xfffffe00 + i + 1) >>> 0;
    assert.equal(id, `${c > 0xfffffe00 ? 'aaaaaaaa' : 'bbbbbbbb'}${c.toString(16).padStart(8, '0')}`);
  }
  assert.ok(seen.has('bbbbbbbb00000000'));
  assert.ok(seen.has('aaaaaaaaffffffff'));
});

test('newId: 16 lower-case hex characters, one process prefix, consecutive counters', () => {
  const ids = Array.from({ length: 1000 }, () => newId());
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) assert.match(id, /^[0-9a-f]{16}$/);
  assert.equal(new Set(ids.map((id) => id.slice(0, 8))).size, 1);
  for (let i = 1; i < ids.length; i++) assert.equal(Number.parseInt(ids[i]!.slice(8), 16), Number.parseInt(ids[i - 1]!.slice(8), 16) + 1);
});
