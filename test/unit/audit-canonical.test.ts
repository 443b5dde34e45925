/**
 * The chain line is serialised from one object literal holding every field (audit/record.ts
 * canonicalFields), and a request record's `secrets` and `fingerprints` are scrubbed without
 * scrubJson (proxy/record-scrub.ts). Both are shortcuts: the bytes must be exactly what the
 * documented form gives, written out here by hand, and the scrub exactly what scrubJson gives,
 * for hostile shapes too (a `__proto__` name, non-string members, inherited fields, long names).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { formatChainLine, GENESIS_PREV } from '../../src/audit/line.js';
import { canonicalFields, normalizeRecord, MAX_FIELD_CHARS, type AuditRecord } from '../../src/audit/record.js';
import { scrubRecordText } from '../../src/proxy/record-scrub.js';
import { scrubJson } from '../../src/scrub/json.js';

const secret = `fake-${randomBytes(12).toString('hex')}`;
const text = (s: string): string => s.split(secret).join('[REDACTED:secret:s]');

test('a record with secrets and fingerprints: the line is the hand-written canonical JSON', () => {
  const fps = JSON.parse('{"__proto__":"aa","tok":"bb","n":1}') as Record<string, string>;
  const rec = {
    request_id: 'r1',
    time: 't',
    event: 'request',
    outcome: 'completed',
    agent: 'a',
    method: 'GET',
    scheme: 'https',
    host: 'h',
    port: 443,
    path: '/p?q=1',
    rule: null,
    status: 200,
    duration_ms: Number.NaN,
    secrets: ['tok', 7, 'x'],
    fingerprints: fps,
    extra: 'dropped',
    code: undefined,
  } as unknown as AuditRecord;
  const want =
    '{"seq":3,"prev":"' +
    GENESIS_PREV +
    '","time":"t","event":"request","outcome":"completed","agent":"a","method":"GET","scheme":"https","host":"h","port":443,"path":"/p?q=","rule":null,"status":200,"secrets":["tok","x"],"fingerprints":{"__proto__":"aa","tok":"bb"},"request_id":"r1"}';
  const line = formatChainLine(rec, 3, GENESIS_PREV).line;
  assert.equal(line.slice(0, line.lastIndexOf(',"hash":')) + '}', want);
  assert.equal(JSON.stringify(canonicalFields(rec)), JSON.stringify(normalizeRecord(rec)));
  // The parsed name stays data: no prototype was set on the normalised copy.
  const n = normalizeRecord(rec);
  assert.equal(Object.getPrototypeOf(n.fingerprints), Object.prototype);
  assert.deepEqual(Object.keys(n.fingerprints ?? {}), ['__proto__', 'tok']);
});

test('normalizeRecord keeps no undefined field and caps long names and values in fingerprints', () => {
  const long = 'k'.repeat(MAX_FIELD_CHARS + 10);
  const n = normalizeRecord({ time: 't', event: 'request', outcome: 'denied', agent: null, fingerprints: { [long]: long } });
  assert.deepEqual(Object.keys(n), ['time', 'event', 'outcome', 'agent', 'fingerprints']);
  const [[k, v]] = Object.entries(n.fingerprints ?? {}) as [[string, string]];
  assert.equal(k.length, MAX_FIELD_CHARS + '…[truncated]'.length);
  assert.equal(v, k);
});

test('the scrub of secrets and fingerprints equals scrubJson, for hostile shapes too', () => {
  const inherited = Object.create({ [`up-${secret}`]: secret }) as Record<string, string>;
  inherited[`own-${secret}`] = `v-${secret}`;
  const shapes: unknown[] = [
    [`a${secret}`, 'b'],
    ['a', 1, null, { x: secret }],
    { [`name-${secret}`]: `fp-${secret}`, plain: 'x' },
    JSON.parse(`{"__proto__":"${secret}","b":"c"}`),
    { a: 'x', n: 2 },
    { a: { b: secret } },
    inherited,
    Object.assign(Object.create(null), { [secret]: 'v' }),
    [],
    {},
  ];
  for (const shape of shapes) {
    const rec = { time: 't', event: 'request', outcome: 'completed', agent: 'a', secrets: shape, fingerprints: shape } as unknown as AuditRecord;
    const got = scrubRecordText(rec, text) as unknown as Record<string, unknown>;
    const want = scrubJson(shape, text);
    assert.deepEqual(got.secrets, want, JSON.stringify(shape));
    assert.deepEqual(got.fingerprints, want, JSON.stringify(shape));
    assert.equal(JSON.stringify(got).includes(secret), false);
  }
});
