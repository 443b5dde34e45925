/**
 * `turret audit verify FILE...`: walks the chain across files and reports the FIRST problem.
 *
 * Per line, in this order: the line must be complete and well-formed (`malformed`), its bytes
 * must match its own hash (`modified`), and it must follow the previous line: seq one higher
 * and prev equal to the previous hash. A line whose hash is right but whose successor's prev does
 * not point at it was altered and rehashed (`modified`, reported at the altered line). A seq lower
 * than expected is `reordered`. A seq higher than expected is `reordered` if a skipped seq turns
 * up later in the files, and `missing` if it never does (a deleted line or file).
 *
 * What a key-less chain cannot show: lines cut from the very end, lines cut from the very start
 * (indistinguishable from rotated-out files unless the chain starts at seq 1), or a rewrite of
 * every line from some point on. Keep `last.hash` somewhere else to catch those.
 */

import { resolve } from 'node:path';
import { GENESIS_PREV, parseChainLine } from './line.js';
import { readLines, type RawLine } from './read-lines.js';

export type VerifyProblemKind = 'modified' | 'missing' | 'reordered' | 'malformed';

export interface VerifyResult {
  ok: boolean;
  /** Records checked and found in order before the first problem (all of them when ok). */
  records: number;
  problem?: { file: string; line: number; kind: VerifyProblemKind; detail: string };
  /** The first record's position in the chain; seq 1 means nothing was rotated out before it. */
  first?: { seq: number; prev: string };
  /** The last good record: anchor `hash` elsewhere to make truncation at the end detectable. */
  last?: { seq: number; hash: string };
  /** True when the first record is seq 1 with the genesis prev (nothing rotated out or cut). */
  startsAtGenesis?: boolean;
}

/** Seq of the first well-formed line of a file; files are put in chain order by it. */
async function firstSeq(file: string): Promise<number> {
  try {
    for await (const l of readLines(file)) {
      const p = parseChainLine(l.line);
      if (p.ok) return p.seq;
    }
  } catch {
    // Unreadable files sort last; the main walk reports them.
  }
  return Number.POSITIVE_INFINITY;
}

/** Looks for any seq in [lo, hi] from the current position onwards (the rest of `gen`, then later files). */
async function findSkipped(gen: AsyncGenerator<RawLine>, file: string, later: string[], lo: number, hi: number): Promise<string | null> {
  const inRange = (l: RawLine): boolean => {
    const p = parseChainLine(l.line);
    return p.ok && p.seq >= lo && p.seq <= hi;
  };
  for (let r = await gen.next(); r.done !== true; r = await gen.next()) {
    if (inRange(r.value)) return `${file}:${r.value.lineNo}`;
  }
  for (const f of later) {
    try {
      for await (const l of readLines(f)) if (inRange(l)) return `${f}:${l.lineNo}`;
    } catch {
      // An unreadable later file cannot hold the skipped records as far as we can tell.
    }
  }
  return null;
}

export async function verifyAuditFiles(files: string[]): Promise<VerifyResult> {
  const unique = [...new Map(files.map((f) => [resolve(f), f])).values()];
  const keyed = await Promise.all(unique.map(async (f) => ({ f, seq: await firstSeq(f) })));
  const ordered = keyed.sort((a, b) => a.seq - b.seq).map((k) => k.f);

  const res: VerifyResult = { ok: true, records: 0 };
  let prevHash: string | null = null;
  let prevFile = '';
  let prevLine = 0;
  let expected = 0;
  const fail = (file: string, line: number, kind: VerifyProblemKind, detail: string): VerifyResult => ({
    ...res,
    ok: false,
    problem: { file, line, kind, detail },
  });

  for (const [i, file] of ordered.entries()) {
    const gen = readLines(file);
    try {
      for await (const raw of gen) {
        const { lineNo } = raw;
        if (!raw.terminated) {
          return fail(file, lineNo, 'malformed', 'incomplete last line (no newline): truncated or interrupted write');
        }
        const p = parseChainLine(raw.line);
        if (!p.ok) return fail(file, lineNo, 'malformed', p.detail);
        if (!p.intact) return fail(file, lineNo, 'modified', `seq ${p.seq}: content does not match its hash`);
        if (prevHash === null) {
          if (p.seq === 1 && p.prev !== GENESIS_PREV) {
            return fail(file, lineNo, 'modified', 'seq 1 must have prev = 64 zeros');
          }
          res.first = { seq: p.seq, prev: p.prev };
          res.startsAtGenesis = p.seq === 1;
        } else if (p.seq === expected) {
          if (p.prev !== prevHash) {
            // Most likely the earlier record was edited and its own hash recomputed; it could also
            // be this record's prev that was forged, so the detail names both lines.
            return fail(
              prevFile,
              prevLine,
              'modified',
              `seq ${p.seq - 1}: its hash is not the prev of the next record (${file}:${lineNo}); one of the two was altered and rehashed`,
            );
          }
        } else if (p.seq < expected) {
          return fail(file, lineNo, 'reordered', `seq ${p.seq} comes after seq ${expected - 1}`);
        } else {
          const found = await findSkipped(gen, file, ordered.slice(i + 1), expected, p.seq - 1);
          return found !== null
            ? fail(file, lineNo, 'reordered', `seq ${p.seq} comes before seq ${expected} (found at ${found})`)
            : fail(file, lineNo, 'missing', `seq jumps from ${expected - 1} to ${p.seq}: ${p.seq - expected} record(s) missing before this line`);
        }
        prevHash = p.hash;
        prevFile = file;
        prevLine = lineNo;
        expected = p.seq + 1;
        res.records += 1;
        res.last = { seq: p.seq, hash: p.hash };
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'unreadable';
      return fail(file, 0, 'missing', `cannot read file (${code})`);
    }
  }
  return res;
}
