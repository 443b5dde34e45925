/**
 * The audit record's scrub (wired in cli/start.ts): every field that can carry text from an
 * agent, an upstream or an operator goes through the record line filter (record-line.ts), deep
 * (secret names, fingerprints, the approval note); the fields Turret makes itself are copied as
 * they are. Scanning those was most of a record's scrub cost, because two of them never repeat
 * (`time`, `request_id`), so the clean-string memo (clean-strings.ts) could not spare them
 * (docs/benchmarks.md, "Fourth pass: audit").
 *
 * The fields Turret makes itself (audit/record.ts TURRET_MADE_FIELDS) are copied as they are; any
 * other field, including one added later, is scrubbed. The file log takes scrubbedBody: the same
 * scrub and the record's canonical JSON in one pass, without the copy (docs/benchmarks.md,
 * "Twelfth pass: audit and decision").
 */
import { chainBody } from '../audit/line.js';
import type { JsonOut } from '../audit/json-out.js';
import { scrubbedChainBody, scrubbedChainBodyInto, TURRET_MADE_FIELDS, type AuditRecord } from '../audit/record.js';
import { scrubJson } from '../scrub/json.js';

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
    if (typeof v === 'string') out[k] = TURRET_MADE_FIELDS.has(k) ? v : text(v);
    else if (typeof v === 'number' || v === null) out[k] = v;
    else out[k] = scrubNested(v, text);
  }
  return out as unknown as AuditRecord;
}

/** What scrubRecordText puts in its copy for a field holding an object (or any non-string, non-number). */
function scrubNested(v: unknown, text: (s: string) => string): unknown {
  return stringList(v, text) ?? stringMap(v, text) ?? scrubJson(v, text);
}

/**
 * chainBody(scrubRecordText(rec, text)), byte for byte, without the scrubbed copy and the
 * canonical copy of the record (audit/record.ts scrubbedChainBody); the copy for a record that is
 * not one Turret makes.
 */
export function scrubbedBody(rec: AuditRecord, text: (s: string) => string): string {
  return scrubbedChainBody(rec, text, scrubNested) ?? chainBody(scrubRecordText(rec, text));
}

/**
 * scrubbedBody's bytes, written into `out` (the file log's writer, audit/writer.ts bodyInto):
 * no string of the body is made for a record Turret makes. A throw (the scrubber failed) can
 * leave part of a body in `out`; the writer starts it again then.
 */
export function scrubbedBodyInto(rec: AuditRecord, text: (s: string) => string, out: JsonOut): void {
  if (!scrubbedChainBodyInto(rec, text, scrubNested, out)) out.text(chainBody(scrubRecordText(rec, text)));
}

// The two nested shapes a request record has when it injected a secret (`secrets`, a list of
// names, and `fingerprints`, name → fingerprint) are scrubbed as scrubJson would, without its
// cycle guard and closures per call: they were most of the extra cost of such a record's scrub
// (docs/benchmarks.md, "Sixth pass"). Anything else goes to scrubJson.

function stringList(v: unknown, text: (s: string) => string): string[] | null {
  if (!Array.isArray(v)) return null;
  for (const x of v) if (typeof x !== 'string') return null;
  return (v as string[]).map((x) => text(x));
}

function stringMap(v: unknown, text: (s: string) => string): Record<string, string> | null {
  if (typeof v !== 'object' || v === null || Object.getPrototypeOf(v) !== Object.prototype) return null;
  const from = v as Record<string, unknown>;
  for (const k in from) if (Object.hasOwn(from, k) && typeof from[k] !== 'string') return null;
  const out: Record<string, string> = {};
  for (const k in from) if (Object.hasOwn(from, k)) out[text(k)] = text(from[k] as string);
  return out;
}
