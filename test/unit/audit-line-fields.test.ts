/**
 * The audit line as serialised from one object literal (audit/record.ts canonicalFields, line.ts)
 * and the record scrub (proxy/record-scrub.ts), for a record with every known field set:
 * - no field is lost: every field canonicalFields knows is in the line, with its value;
 * - the chain covers every field: changing any one value in the written line (or dropping it)
 *   makes the line fail its hash, so `turret audit verify` reports it;
 * - no field is left unscrubbed: a fake secret put in every field that can carry outside text
 *   (everything but the Turret-made ones) appears nowhere in the line.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'node:test';
import { formatChainLine, GENESIS_PREV, parseChainLine } from '../../src/audit/line.js';
import { canonicalFields, type AuditRecord } from '../../src/audit/record.js';
import { scrubRecordText } from '../../src/proxy/record-scrub.js';

const secret = `fake-${randomBytes(12).toString('hex')}`;
const text = (s: string): string => s.split(secret).join('[REDACTED:secret:s]');

/** Every field set; text fields an agent or upstream could fill carry the secret. */
const full = (): AuditRecord => ({
  time: '2026-12-01T00:00:00.000Z',
  event: 'request',
  outcome: 'completed',
  agent: `agent-${secret}`,
  method: `GET${secret}`,
  scheme: 'https',
  host: `h-${secret}.test`,
  port: 443,
  path: `/p/${secret}?q=${secret}`,
  rule: `rule-${secret}`,
  reason: `why ${secret}`,
  code: 'policy_denied',
  status: 200,
  bytes_in: 1,
  bytes_out: 2,
  duration_ms: 3.5,
  secrets: [`name-${secret}`, 'b'],
  fingerprints: { [`fp-${secret}`]: `v-${secret}`, b: 'c' },
  redactions: 4,
  alert: `alert-${secret}`,
  alert_secret: `as-${secret}`,
  client: '127.0.0.1:1',
  tunnel_id: 't1',
  request_id: 'r1',
  approval: { id: `ap-${secret}`, decision: 'allowed_once', by: `op-${secret}`, at: 'now', until: 'later', message: `msg ${secret}` },
});

it('every known field is in the line, and changing or dropping any one breaks its hash', () => {
  const rec = full();
  const line = formatChainLine(rec, 1, GENESIS_PREV).line.slice(0, -1);
  const parsed = JSON.parse(line) as Record<string, unknown>;
  const fields = Object.keys(canonicalFields(rec));
  assert.equal(fields.length, 25);
  for (const k of fields) assert.notEqual(parsed[k], undefined, `field ${k} lost`);
  assert.equal(parseChainLine(Buffer.from(line)).ok && (parseChainLine(Buffer.from(line)) as { intact: boolean }).intact, true);
  for (const k of fields) {
    for (const change of ['value', 'drop'] as const) {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (change === 'drop') delete o[k];
      else o[k] = typeof o[k] === 'number' ? (o[k] as number) + 1 : typeof o[k] === 'string' ? `${o[k] as string}x` : { ...(o[k] as object), z: 'x' };
      const p = parseChainLine(Buffer.from(JSON.stringify(o)));
      assert.ok(p.ok, `${k} ${change}`);
      assert.equal(p.intact, false, `${change} of ${k} not caught`);
    }
  }
});

it('a secret in every field that can carry outside text appears nowhere in the line', () => {
  const line = formatChainLine(scrubRecordText(full(), text), 1, GENESIS_PREV).line;
  assert.equal(line.includes(secret), false, line);
  // And the scrub kept the fields (redacted, not dropped).
  const parsed = JSON.parse(line) as Record<string, unknown>;
  assert.equal(Object.keys(parsed).length, 25 + 3);
});
