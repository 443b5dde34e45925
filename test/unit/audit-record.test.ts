import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MAX_FIELD_CHARS, normalizeRecord, stripQueryValues, type AuditRecord } from '../../src/audit/record.js';
import { memorySink } from '../../src/audit/chain.js';

test('stripQueryValues removes every value and the fragment, keeps names and order', () => {
  const cases: [string, string][] = [
    ['/a', '/a'],
    ['/a?', '/a?'],
    ['/search?q=top+secret&page=2', '/search?q=&page='],
    ['/x?token=abc=def==&b=1', '/x?token=&b='], // "=" inside a value
    ['/x?a=1#frag=secret', '/x?a='],
    ['/x#only?a=1', '/x'], // "?" after "#" is fragment, not query
    ['/x?a=1?b=2', '/x?a='], // a second "?" is part of the first value
    ['/x?flag&k=v', '/x?flag&k='], // a bare name has no value to remove
    ['/x?a=1&&b=2&', '/x?a=&&b=&'],
    ['/x?%61=%31', '/x?%61='], // encoded values are values too
    ['/x?=nameless', '/x?='],
    ['*', '*'],
  ];
  for (const [input, want] of cases) assert.equal(stripQueryValues(input), want, input);
});

test('stripQueryValues is idempotent (sinks apply it again)', () => {
  for (const p of ['/a?x=1&y', '/b?=2#c', '/c?d=e=f&&g=h']) {
    const once = stripQueryValues(p);
    assert.equal(stripQueryValues(once), once);
  }
});

test('normalizeRecord keeps only known fields, in canonical order, and strips query values', () => {
  const fake = `fake-${randomBytes(8).toString('hex')}`;
  const hostile = {
    time: '2026-01-01T00:00:00.000Z',
    request_id: 'r1',
    outcome: 'allowed',
    event: 'request',
    agent: 'bot',
    path: `/repos?access_token=${fake}&per_page=5`,
    headers: { authorization: `Bearer ${fake}` },
    body: fake,
    port: Number.NaN,
    status: Number.POSITIVE_INFINITY,
    bytes_in: 12,
    secrets: ['gh', 42, null],
    fingerprints: { gh: 'abcd', ['__proto__']: 'x', bad: 7 },
  } as unknown as AuditRecord;
  const n = normalizeRecord(hostile);
  const json = JSON.stringify(n);
  assert.ok(!json.includes(fake), 'no value from the query, headers or body survives');
  assert.deepEqual(Object.keys(n), ['time', 'event', 'outcome', 'agent', 'path', 'bytes_in', 'secrets', 'fingerprints', 'request_id']);
  assert.equal(n.path, '/repos?access_token=&per_page=');
  assert.deepEqual(n.secrets, ['gh']);
  assert.deepEqual(Object.keys(n.fingerprints ?? {}), ['gh', '__proto__']);
  assert.equal(Object.getPrototypeOf(n.fingerprints), Object.prototype, '__proto__ stays a plain key');
});

test('normalizeRecord caps agent-controlled strings and keeps null agent and rule', () => {
  const long = 'h'.repeat(MAX_FIELD_CHARS * 3);
  const n = normalizeRecord({ time: 't', event: 'request', outcome: 'denied', agent: null, host: long, rule: null });
  assert.equal(n.agent, null);
  assert.equal(n.rule, null);
  assert.ok((n.host ?? '').length < MAX_FIELD_CHARS + 20);
  assert.ok(n.host?.endsWith('…[truncated]'));
});

test('memorySink scrubs, normalises and chains like the file log', async () => {
  const fake = `sk-fake-${randomBytes(12).toString('hex')}`;
  const sink = memorySink({ scrub: (r) => ({ ...r, reason: (r.reason ?? '').replaceAll(fake, '[redacted]') }) });
  sink.write({ time: 't', event: 'request', outcome: 'failed', agent: 'a', reason: `upstream said ${fake}`, path: `/p?k=${fake}` });
  sink.write({ time: 't', event: 'tunnel_close', outcome: 'completed', agent: 'a' });
  await sink.close();
  assert.equal(sink.records.length, 2);
  assert.equal(sink.records[0]?.reason, 'upstream said [redacted]');
  assert.ok(!sink.lines.join('').includes(fake));
  const [l1, l2] = sink.lines.map((l) => JSON.parse(l) as { seq: number; prev: string; hash: string });
  assert.equal(l1?.seq, 1);
  assert.equal(l2?.seq, 2);
  assert.equal(l2?.prev, l1?.hash);
});

test('a scrubber that throws reduces the record instead of writing it unscrubbed', () => {
  const fake = `fake-${randomBytes(8).toString('hex')}`;
  const sink = memorySink({
    scrub: () => {
      throw new Error('scrubber bug');
    },
  });
  sink.write({ time: 't', event: 'request', outcome: 'completed', agent: 'a', host: 'api.example', reason: fake });
  assert.ok(!sink.lines.join('').includes(fake));
  assert.equal(sink.records[0]?.outcome, 'completed');
  assert.equal(sink.records[0]?.host, undefined);
  assert.match(sink.records[0]?.reason ?? '', /scrubber failed/);
});
