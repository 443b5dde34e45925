/**
 * The console feed keeps the last FEED_SIZE records in a circle (proxy/console/feed.ts): newest
 * first from recent(), the oldest gone once more than FEED_SIZE were pushed, find() by request id
 * over exactly what is kept, across the point where the circle wraps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditRecord } from '../../src/audit/record.js';
import { FEED_SIZE, RecordFeed } from '../../src/proxy/console/feed.js';

const rec = (i: number): AuditRecord => ({ time: `t${i}`, event: 'request', outcome: 'completed', agent: 'a', request_id: `r${i}` });
const ids = (rs: AuditRecord[]): string[] => rs.map((r) => r.request_id ?? '');

test('recent() and find() before, at and past the wrap of the circle', () => {
  const feed = new RecordFeed((s) => s);
  assert.deepEqual(feed.recent(), []);
  for (let i = 1; i <= 3; i++) feed.push(rec(i));
  assert.deepEqual(ids(feed.recent()), ['r3', 'r2', 'r1']);
  for (let i = 4; i <= FEED_SIZE; i++) feed.push(rec(i));
  assert.equal(feed.recent().length, FEED_SIZE);
  assert.deepEqual(ids(feed.recent(2)), [`r${FEED_SIZE}`, `r${FEED_SIZE - 1}`]);
  assert.equal(ids(feed.recent()).at(-1), 'r1');
  // Each push past FEED_SIZE lets the oldest go; checked over more than one full turn.
  for (let i = FEED_SIZE + 1; i <= 2 * FEED_SIZE + 7; i++) {
    feed.push(rec(i));
    const all = ids(feed.recent());
    assert.equal(all.length, FEED_SIZE);
    assert.equal(all[0], `r${i}`);
    assert.equal(all.at(-1), `r${i - FEED_SIZE + 1}`);
  }
  const last = 2 * FEED_SIZE + 7;
  assert.deepEqual(ids(feed.recent(3)), [`r${last}`, `r${last - 1}`, `r${last - 2}`]);
  assert.equal(feed.find(`r${last}`)?.time, `t${last}`);
  assert.equal(feed.find(`r${last - FEED_SIZE + 1}`)?.time, `t${last - FEED_SIZE + 1}`);
  assert.equal(feed.find(`r${last - FEED_SIZE}`), undefined);
});

test('a record pushed twice is found at its newest place, and live subscribers see each push', () => {
  const feed = new RecordFeed((s) => s);
  const seen: string[] = [];
  const stop = feed.subscribe((r) => seen.push(r.request_id ?? ''));
  feed.push(rec(1));
  feed.push({ ...rec(1), time: 'again' });
  stop();
  feed.push(rec(2));
  assert.deepEqual(seen, ['r1', 'r1']);
  assert.equal(feed.find('r1')?.time, 'again');
});
