/**
 * The audit record's scrub skips only the fields Turret makes itself (proxy/record-scrub.ts), and
 * the chain line is built in one pass (audit/line.ts). A fake secret placed in every other field
 * must be gone from the written line, and the line must stay byte for byte the documented form.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { formatChainLine, GENESIS_PREV, parseChainLine } from '../../src/audit/line.js';
import { normalizeRecord, type AuditRecord } from '../../src/audit/record.js';
import { keyRingFrom } from '../../src/secrets/keys.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { recordLine } from '../../src/proxy/record-line.js';
import { scrubRecordText } from '../../src/proxy/record-scrub.js';

const ring = keyRingFrom(randomBytes(32));
const secret = `fake-${randomBytes(16).toString('hex')}`;
const scrubber = compileScrubber({ secrets: [{ name: 's', value: secret, replacement: '[REDACTED:secret:s]' }], patterns: compilePatterns(BUILTIN_PATTERNS) });
const text = (s: string): string => recordLine(ring, scrubber, s);

function spec(rec: AuditRecord, seq: number, prev: string): string {
  return JSON.stringify({ seq, prev, ...normalizeRecord(rec) });
}

test('the chain line is byte for byte the documented canonical form plus its hash', () => {
  const records: AuditRecord[] = [
    { time: 't', event: 'request', outcome: 'denied', agent: null, rule: null },
    { time: '2026-11-30T20:00:00.000Z', event: 'request', outcome: 'completed', agent: 'a"\\\u2028é', method: 'GET', host: 'h', port: 443, path: '/x?a=1', duration_ms: 0.1 },
    {
      time: 't',
      event: 'request',
      outcome: 'allowed',
      agent: 'a',
      secrets: ['gh'],
      fingerprints: { gh: 'abc', __proto__x: 'd' },
      approval: { id: 'ap1', decision: 'denied', message: 'no\n' },
    },
  ];
  let prev = GENESIS_PREV;
  records.forEach((rec, i) => {
    const f = formatChainLine(rec, i + 1, prev);
    const canonical = spec(rec, i + 1, prev);
    assert.equal(f.line, `${canonical.slice(0, -1)},"hash":"${f.hash}"}\n`);
    const parsed = parseChainLine(Buffer.from(f.line.slice(0, -1)));
    assert.ok(parsed.ok && parsed.intact && parsed.hash === f.hash && parsed.prev === prev);
    prev = f.hash;
  });
});

test('a secret in any field an agent, upstream or operator can fill is scrubbed from the line', () => {
  const fields: Array<(s: string) => Partial<AuditRecord>> = [
    (s) => ({ agent: s }),
    (s) => ({ method: s }),
    (s) => ({ host: `${s}.example` }),
    (s) => ({ path: `/a/${s}/b` }),
    (s) => ({ rule: `rules/${s}.yaml:1` }),
    (s) => ({ reason: `upstream said ${s}` }),
    (s) => ({ secrets: ['ok', s] }),
    (s) => ({ fingerprints: { [s]: 'abc' } }),
    (s) => ({ fingerprints: { gh: s } }),
    (s) => ({ alert: s, alert_secret: s }),
    (s) => ({ approval: { id: 'ap', decision: 'denied', by: s, message: `x ${s}` } }),
  ];
  for (const make of fields) {
    const rec: AuditRecord = { time: '2026-11-30T20:00:00.000Z', event: 'request', outcome: 'completed', agent: 'a', ...make(secret) };
    const line = formatChainLine(scrubRecordText(rec, text), 1, GENESIS_PREV).line;
    assert.ok(!line.includes(secret), line);
    assert.match(line, /\[REDACTED:secret:s\]/, line);
  }
});

test('the fields Turret makes itself are copied as they are, numbers included', () => {
  let calls = 0;
  const counting = (s: string): string => (calls++, text(s));
  const rec: AuditRecord = {
    time: '2026-11-30T20:00:00.000Z',
    event: 'request',
    outcome: 'completed',
    agent: 'a',
    scheme: 'https',
    code: 'upstream_timeout',
    client: '127.0.0.1:5000',
    tunnel_id: 'ab12',
    request_id: 'cd34',
    port: 443,
    status: 200,
    bytes_in: 1,
    bytes_out: 2,
    duration_ms: 3.5,
  };
  const out = scrubRecordText(rec, counting);
  assert.deepEqual(out, rec);
  assert.equal(calls, 1); // agent only
});
