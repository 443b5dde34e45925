/**
 * The on-disk line format of the hash-chained audit log (docs/operations.md repeats this).
 *
 *   canonical = JSON.stringify({ seq, prev, ...normalizeRecord(record) })   // no whitespace
 *   hash      = hex(sha256(UTF-8 bytes of canonical))
 *   line      = canonical without its final "}" + ',"hash":"' + hash + '"}' + "\n"
 *
 * So the canonical form is exactly the line as written with the trailing `,"hash":"<64 hex>"`
 * removed. Verifiers hash the raw bytes of the line minus that suffix; they never re-serialise
 * parsed JSON, which would make the check depend on one JSON library's number and escape
 * formatting (rejected for that reason: any language can check a line with a byte slice).
 *
 * `seq` starts at 1 and increases by one per record across rotated files; `prev` is the hash of
 * the previous line, or 64 zeros for seq 1.
 *
 * The file log builds this in two halves (docs/benchmarks.md, "Seventh pass: audit record"): the
 * event loop serialises only the record (chainBody) and copies it into the hand-over ring; the
 * writer thread adds seq and prev, hashes and adds the hash (chainInto), in ring order, so the
 * event loop computes no hash. formatChainLine does it all at once (the memory sink, tests).
 */

import { createHash, hash as oneShotHash } from 'node:crypto';
import { canonicalFields, type AuditRecord } from './record.js';

export const GENESIS_PREV = '0'.repeat(64);

/** `,"hash":"` + 64 hex + `"}` */
const SUFFIX_BYTES = 9 + 64 + 2;
const SUFFIX_RE = /^,"hash":"([0-9a-f]{64})"\}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface FormattedLine {
  /** The full line including the trailing newline. */
  line: string;
  hash: string;
}

/**
 * The record part of the canonical form: JSON.stringify(normalizeRecord(rec)), without copying the
 * record once more (canonicalFields, record.ts, says why not normalizeRecord itself). A normalised
 * record always holds `time`, so this is never `{}`; JSON.stringify escapes every control
 * character, so it never holds a newline (the ring separates bodies with one).
 */
export function chainBody(rec: AuditRecord): string {
  return JSON.stringify(canonicalFields(rec));
}

/** UTF-8 bytes of the line (newline included) that a body of `bodyBytes` UTF-8 bytes makes at `seq`. */
export function chainLineBytes(bodyBytes: number, seq: number): number {
  // `{"seq":` seq `,"prev":"` 64 hex `",` body without its `{` and `}`, then `,"hash":"` 64 hex `"}\n`.
  return 7 + digits(seq) + 9 + 64 + 2 + (bodyBytes - 2) + SUFFIX_BYTES + 1;
}

/** String(n).length for a safe positive integer, without the string (once per record). */
function digits(n: number): number {
  let d = 1;
  for (let p = 10; p <= n; p *= 10) d++;
  return d;
}

export function formatChainLine(rec: AuditRecord, seq: number, prev: string): FormattedLine {
  // Byte for byte JSON.stringify({ seq, prev, ...normalizeRecord(rec) }).
  const canonical = `{"seq":${JSON.stringify(seq)},"prev":${JSON.stringify(prev)},${chainBody(rec).slice(1)}`;
  // The one-shot hash: no Hash object per record.
  const hash = oneShotHash('sha256', canonical, 'hex');
  return { line: `${canonical.slice(0, -1)},"hash":"${hash}"}\n`, hash };
}

/**
 * Writes the chained line of `body` (chainBody's UTF-8 bytes) at `seq` after `prev` into `out` at
 * `at`: the bytes formatChainLine gives, hashed from `out` itself. `out` needs room for
 * chainLineBytes(body.length, seq) bytes from `at`. Returns where the line ends and its hash.
 */
export function chainInto(out: Buffer, at: number, body: Buffer, seq: number, prev: string): { end: number; hash: string } {
  let p = at + out.write(`{"seq":${seq},"prev":"${prev}",`, at, 'latin1');
  p += body.copy(out, p, 1); // ends with the body's `}`: the canonical form
  const hash = oneShotHash('sha256', out.subarray(at, p), 'hex');
  p += out.write(`,"hash":"${hash}"}\n`, p - 1, 'latin1') - 1;
  return { end: p, hash };
}

export type ParsedLine =
  | {
      ok: true;
      seq: number;
      prev: string;
      /** The hash written in the line. */
      hash: string;
      /** Whether the written hash matches the line's canonical bytes. */
      intact: boolean;
      record: Record<string, unknown>;
    }
  | { ok: false; detail: string };

/** Parses one line (without its newline). Never throws. */
export function parseChainLine(line: Buffer): ParsedLine {
  if (line.length <= SUFFIX_BYTES) return { ok: false, detail: 'line too short to hold a chained record' };
  const written = SUFFIX_RE.exec(line.subarray(line.length - SUFFIX_BYTES).toString('latin1'))?.[1];
  if (written === undefined) return { ok: false, detail: 'line does not end with ,"hash":"<64 hex>"}' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(line.toString('utf8'));
  } catch {
    return { ok: false, detail: 'line is not valid JSON' };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { ok: false, detail: 'line is not a JSON object' };
  }
  const obj = parsed as Record<string, unknown>;
  const { seq, prev, hash } = obj;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    return { ok: false, detail: 'seq is missing or not a positive integer' };
  }
  if (typeof prev !== 'string' || !HEX64_RE.test(prev)) return { ok: false, detail: 'prev is missing or not 64 hex' };
  // A duplicate "hash" key could make the parsed value differ from the trailing one.
  if (hash !== written) return { ok: false, detail: 'hash field is ambiguous' };
  const canonical = Buffer.concat([line.subarray(0, line.length - SUFFIX_BYTES), Buffer.from('}')]);
  return { ok: true, seq, prev, hash: written, intact: sha256Hex(canonical) === written, record: obj };
}
