/**
 * The audit record's scrub (wired in cli/start.ts): every field that can carry text from an
 * agent, an upstream or an operator goes through the record line filter (record-line.ts), deep
 * (secret names, fingerprints, the approval note); the fields Turret makes itself are copied as
 * they are. Scanning those was most of a record's scrub cost, because two of them never repeat
 * (`time`, `request_id`), so the clean-string memo (clean-strings.ts) could not spare them
 * (docs/benchmarks.md, "Fourth pass: audit").
 *
 * Turret-made, so nothing an agent or upstream sends can reach them: `time` (toISOString),
 * `event`, `outcome`, `scheme` (fixed words, and normalizeRecord drops any other scheme), `code`
 * (the error table, core/errors.ts), `client` (the socket's own address and port), `tunnel_id`
 * and `request_id` (random hex), and numbers. Any other field, including one added later, is
 * scrubbed: the list names what is skipped, not what is scanned.
 */
import type { AuditRecord } from '../audit/record.js';
import { scrubJson } from '../scrub/json.js';

const TURRET_MADE: ReadonlySet<string> = new Set(['time', 'event', 'outcome', 'scheme', 'code', 'client', 'tunnel_id', 'request_id']);

/** A copy of `rec` with the text of every field that can carry outside text passed through `text`. */
export function scrubRecordText(rec: AuditRecord, text: (s: string) => string): AuditRecord {
  const out: Record<string, unknown> = {};
  const from = rec as unknown as Record<string, unknown>;
  // for-in, not Object.entries (an array per field); a string is passed straight to `text` (scrubJson
  // would set up its cycle guard for it): this runs once per request.
  for (const k in from) {
    if (!Object.hasOwn(from, k)) continue;
    const v = from[k];
    if (v === undefined) continue; // normalizeRecord leaves undefined fields out anyway
    // Top-level names are not scrubbed: normalizeRecord keeps only its own fixed names.
    if (typeof v === 'string') out[k] = TURRET_MADE.has(k) ? v : text(v);
    else out[k] = typeof v === 'number' || v === null ? v : scrubJson(v, text);
  }
  return out as unknown as AuditRecord;
}
