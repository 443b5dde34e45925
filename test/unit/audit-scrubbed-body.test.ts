/**
 * The file log serialises a record and scrubs it in one pass (audit/record.ts scrubbedChainBody,
 * proxy/record-scrub.ts scrubbedBody): it must give, byte for byte, the body of the scrubbed copy
 * (chainBody(scrubRecordText(rec))) that it replaces, for every record, hostile ones included,
 * and no secret may reach it in any field that can carry one, in any spelling the scrubber knows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chainBody } from '../../src/audit/line.js';
import { canonicalFields, MAX_FIELD_CHARS, type AuditRecord } from '../../src/audit/record.js';
import { openAuditLog } from '../../src/audit/writer.js';
import { keyRingFrom } from '../../src/secrets/keys.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { recordLine } from '../../src/proxy/record-line.js';
import { scrubbedBody, scrubRecordText } from '../../src/proxy/record-scrub.js';
import { recordCarriers, secretForms } from '../helpers/record-secrets.js';

const ring = keyRingFrom(randomBytes(32));
const secret = `fake_${randomBytes(16).toString('hex')}`;
const scrubber = compileScrubber({ secrets: [{ name: 's', value: secret, replacement: '[REDACTED:secret:s]' }], patterns: compilePatterns(BUILTIN_PATTERNS) });
const text = (s: string): string => recordLine(ring, scrubber, s);

function both(rec: AuditRecord): string {
  const fused = scrubbedBody(rec, text);
  const copy = chainBody(scrubRecordText(rec, text));
  if (fused !== copy) assert.fail(`one pass:\n${fused}\ncopy:\n${copy}`);
  return fused;
}

const base = (): AuditRecord => ({ time: '2026-12-01T21:00:00.123Z', event: 'request', outcome: 'completed', agent: 'a' });

const forms = secretForms(secret);
const carriers = recordCarriers;

test('a secret in each field that can carry one, in each spelling, is scrubbed, and the fused body equals the copy-based one', () => {
  for (const [what, make] of carriers) {
    for (const [form, s] of Object.entries(forms)) {
      const body = both({ ...base(), method: 'GET', host: 'h', port: 443, path: '/x', rule: 'r', reason: 'ok', status: 200, ...make(s) });
      assert.ok(!body.includes(secret) && !body.toLowerCase().includes(secret), `${what} ${form}: ${body}`);
      assert.ok(!body.includes(s), `${what} ${form}: ${body}`);
      assert.match(body, /\[REDACTED:secret:s\]/, `${what} ${form}`);
    }
  }
});

test('a secret that straddles the field cap is scrubbed before the field is cut', () => {
  for (const field of ['path', 'reason', 'host', 'agent'] as const) {
    const long = `${'x'.repeat(MAX_FIELD_CHARS - 10)}${secret}`;
    const body = both({ ...base(), [field]: field === 'path' ? `/${long}` : long });
    assert.ok(!body.includes(secret.slice(0, 10)), field);
    assert.match(body, /\[REDACTED/, field);
  }
});

test('strings that need JSON escaping are escaped exactly as JSON.stringify does', () => {
  const odd = ['"', '\\', '\n\r\t\b\f', '\u0000\u001f\u007f', '\u2028\u2029', 'é😀', '\ud800', 'a\udc00b', '</script>', ''];
  for (const s of odd) {
    for (const field of ['time', 'event', 'outcome', 'agent', 'method', 'host', 'path', 'rule', 'reason', 'code', 'alert', 'client', 'tunnel_id', 'request_id'] as const) {
      both({ ...base(), [field]: `v${s}w` } as AuditRecord);
    }
    both({ ...base(), secrets: [s], fingerprints: { [s]: s }, approval: { id: s, decision: 'denied', message: s } });
  }
});

test('every canonical field, given a value of each type, serialises as the copy does (a field added later must be added to both)', () => {
  const full: AuditRecord = {
    ...base(),
    method: 'GET',
    scheme: 'https',
    host: 'h',
    port: 1,
    path: '/p?q=1#f',
    rule: 'r',
    reason: 'why',
    code: 'policy_denied',
    status: 200,
    bytes_in: 1,
    bytes_out: 2,
    duration_ms: 0.5,
    secrets: ['s'],
    fingerprints: { s: 'f' },
    redactions: 3,
    alert: 'secret_in_request',
    alert_secret: 's',
    client: '127.0.0.1:1',
    tunnel_id: 't',
    request_id: 'r',
    approval: { id: 'ap', decision: 'allowed_for', by: 'cli', at: 'now', until: 'later', message: 'm' },
  };
  const keys = Object.keys(canonicalFields(full));
  assert.deepEqual(Object.keys(JSON.parse(both(full)) as object), keys);
  const values: unknown[] = [
    'x',
    '',
    0,
    -0,
    1.5,
    -7,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    null,
    undefined,
    true,
    ['a', 'b'],
    ['a', 1, null, { x: 'y' }],
    [],
    { a: 'b' },
    { a: 1 },
    { id: 'i', decision: 'denied', by: 'b', extra: 'e' },
    { id: 1 },
    new Date(0),
    'http',
    'https',
    'ftp',
  ];
  for (const k of keys) for (const v of values) both({ ...full, [k]: v } as AuditRecord);
});

test('records that are not object literals of strings where Turret writes strings take the copy path, with the same bytes', () => {
  const inherited = Object.assign(Object.create({ method: 'GET', host: `${secret}.example` }) as AuditRecord, base());
  both(inherited);
  both(Object.assign(Object.create(null) as AuditRecord, base(), { host: secret }));
  both({ ...base(), time: new Date(0) as unknown as string });
  both({ ...base(), time: undefined as unknown as string });
  both({ ...base(), event: 1 as unknown as 'request' });
  both({ ...base(), outcome: undefined as unknown as 'completed' });
  both({ ...base(), fingerprints: JSON.parse(`{"__proto__": "${secret}", "b": "c"}`) as Record<string, string> });
  both({ ...base(), fingerprints: ['a', secret] as unknown as Record<string, string> });
  both({ ...base(), unknown_field: secret } as AuditRecord);
  let reads = 0;
  const getter = {
    ...base(),
    get reason(): string {
      reads++;
      return `r ${secret}`;
    },
  };
  assert.ok(!both(getter).includes(secret));
  assert.equal(reads, 2); // once per path in both()
});

test('the file log with the one-pass body writes the scrubbed record, and reduces it when the scrubber throws', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-scrubbed-body-'));
  try {
    const file = path.join(dir, 'audit.log');
    let fail = false;
    const log = await openAuditLog({
      path: file,
      body: (rec) => {
        if (fail) throw new Error('scrubber bug');
        return scrubbedBody(rec, text);
      },
    });
    const rec: AuditRecord = { ...base(), host: 'h', path: `/x/${forms.percent}`, reason: `upstream said ${forms.base64}` };
    log.write(rec);
    fail = true;
    log.write({ ...rec, reason: secret });
    await log.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 2);
    const all = lines.join('\n');
    for (const s of Object.values(forms)) assert.ok(!all.includes(s));
    const [one, two] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(`{${lines[0]!.slice(lines[0]!.indexOf('"time"'), lines[0]!.lastIndexOf(',"hash"'))}}`, scrubbedBody(rec, text));
    assert.equal(one?.seq, 1);
    assert.equal(two?.host, undefined);
    assert.match(String(two?.reason), /scrubber failed; record reduced/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
