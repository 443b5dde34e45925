/**
 * isoTime (src/core/iso-time.ts) keeps the start of the last second's toISOString and adds the
 * milliseconds: it must give toISOString's exact string for every date, in any order of calls
 * (same second, next second, back in time, far years, before 1970), and throw as it does for an
 * invalid date.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { test } from 'node:test';
import { isoTime } from '../../src/core/iso-time.js';

test('isoTime equals toISOString, call after call', () => {
  const now = Date.now();
  const times: number[] = [];
  // Runs within one second and across its edges, both ways.
  for (let ms = -1500; ms <= 1500; ms++) times.push(now - (now % 1000) + ms);
  for (let ms = 1500; ms >= -1500; ms -= 7) times.push(now - (now % 1000) + ms);
  // Random and extreme dates: before 1970, year 0, negative years, past 9999, the limits.
  for (let i = 0; i < 2000; i++) times.push(randomInt(-8.64e12, 8.64e12) * 1000 + randomInt(1000));
  times.push(0, -1, 1, 999, 1000, -999, -1000, -1001, -62198755200000, -62198755200001, 253402300799999, 253402300800000, 8.64e15, -8.64e15, 8.64e15 - 1);
  for (const t of times) {
    const d = new Date(t);
    assert.equal(isoTime(d), d.toISOString(), `at ${t}`);
    assert.equal(isoTime(d), d.toISOString(), `again at ${t}`);
  }
});

test('isoTime throws like toISOString for an invalid date, and goes on right after', () => {
  const bad = new Date(Number.NaN);
  assert.throws(() => bad.toISOString(), RangeError);
  assert.throws(() => isoTime(bad), RangeError);
  const d = new Date();
  assert.equal(isoTime(d), d.toISOString());
  assert.throws(() => isoTime(new Date(8.64e15 + 1)), RangeError);
  assert.equal(isoTime(d), d.toISOString());
});

test('isoTime of a time value (Date.now()) equals new Date(value).toISOString(), fractions and invalid values included', () => {
  const base = Date.UTC(2026, 11, 2, 0, 30, 0);
  const values = [0, -0, 1, -1, 999, 1000, -1001, 1.5, -1.5, 999.9, 1000.0001, base, base + 1, base + 999, base + 999.99, base + 1000, 8.64e15, -8.64e15];
  for (const v of values) {
    assert.equal(isoTime(v), new Date(v).toISOString(), `at ${v}`);
    assert.equal(isoTime(v), new Date(v).toISOString(), `again at ${v}`);
  }
  for (let ms = base; ms < base + 2500; ms += 7) assert.equal(isoTime(ms), new Date(ms).toISOString(), `at ${ms}`);
  for (const bad of [Number.NaN, Infinity, -Infinity, 8.64e15 + 1, -8.64e15 - 1]) {
    assert.throws(() => isoTime(bad), RangeError, `${bad}`);
    assert.equal(isoTime(base), new Date(base).toISOString());
  }
});
