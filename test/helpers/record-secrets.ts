/**
 * A fake secret as an agent or upstream may spell it in text that ends up in an audit record, and
 * every record field such text can reach: the audit scrub tests put each spelling in each field.
 */
import type { AuditRecord } from '../../src/audit/record.js';

/** The secret as an agent or upstream may spell it in text that ends up in a record. */
export function secretForms(secret: string): Record<string, string> {
  return {
    raw: secret,
    upper: secret.toUpperCase(),
    percent: [...secret].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''),
    base64: Buffer.from(secret).toString('base64'),
    base64url: Buffer.from(secret).toString('base64url'),
    basic: Buffer.from(`user:${secret}`).toString('base64'),
  };
}

/** Every field a secret can reach: from the request line and headers, the upstream, errors, operators. */
export const recordCarriers: Array<[string, (s: string) => Partial<AuditRecord>]> = [
  ['agent', (s) => ({ agent: s })],
  ['method', (s) => ({ method: s })],
  ['host', (s) => ({ host: `${s}.example` })],
  ['path', (s) => ({ path: `/a/${s}/b` })],
  ['query name', (s) => ({ path: `/a?${s}=1&b=2` })],
  ['rule', (s) => ({ rule: `rules/${s}.yaml:1` })],
  ['reason (error text)', (s) => ({ reason: `upstream said: ${s}` })],
  ['secrets', (s) => ({ secrets: ['ok', s] })],
  ['fingerprint name', (s) => ({ fingerprints: { [s]: 'abc' } })],
  ['fingerprint value', (s) => ({ fingerprints: { gh: s } })],
  ['alert', (s) => ({ alert: s, alert_secret: s })],
  ['approval', (s) => ({ approval: { id: `ap ${s}`, decision: 'denied', by: s, at: s, until: s, message: `x ${s}` } })],
];
