/**
 * The incremental scrubbing state machine behind both `scrubString` (one call, final) and the
 * streaming Transform (many calls). It owns the only buffer, and bounds it:
 *
 *   pending = [ctx | held]      ctx: up to CTX bytes already emitted, kept so `\b` and one-byte
 *                                lookbehind see the real previous byte; held: not yet emitted.
 *
 * Normal mode waits until 2·W bytes are held (W = longest match any finder can produce), then
 * emits everything up to `len − W`, except that a match straddling that cut moves the cut back to
 * the match's start. A match whose whole span is ≤ W is therefore always seen whole, whatever the
 * chunking. Held bytes never exceed `maxHold`: if a match of an unbounded pattern is still growing
 * when the limit is reached, what is held is redacted and the token characters that follow are
 * swallowed (fail closed). Block patterns (PEM keys) drop their body as it streams.
 */
import type { CompiledPattern } from './patterns.js';
import type { Candidate, Matcher, Redaction } from './matcher.js';
import { chainStart } from './soft-flush.js';

const CTX = 64;
/** After a forced cut, at most this many following token-alphabet bytes are dropped. */
const SWALLOW_CAP = 1024 * 1024;
const EMPTY = Buffer.alloc(0);
/** A kept tail may stay a view into a buffer the engine allocated itself up to this size;
 * beyond it (or when the buffer is the caller's chunk) the tail is copied out. */
const PIN_LIMIT = 256 * 1024;

interface Range {
  s: number;
  e: number;
  replacement: Buffer;
  redactions: Redaction[];
}

export class ScrubEngine {
  private pending: Buffer = EMPTY;
  /** pending is a view into a buffer this engine allocated (the arena or a copy). */
  private owned = false;
  /** The engine's own buffer that chunks are appended to (see append), and its used length. */
  private arena: Buffer = EMPTY;
  private used = 0;
  private ctxLen = 0;
  private block: { p: CompiledPattern; dropped: number } | undefined;
  private swallowLeft = 0;
  private peak = 0;
  private readonly w: number;

  constructor(
    private readonly m: Matcher,
    private readonly maxHold: number,
    private readonly report: (r: Redaction) => void,
  ) {
    // Two windows must fit under the limit, or no progress is possible without forcing.
    this.w = Math.max(1, Math.min(m.window, Math.floor(maxHold / 2) - CTX));
  }

  /** Bytes received but not yet emitted (or dropped). */
  get held(): number {
    return this.pending.length - this.ctxLen;
  }

  /** The largest `held` seen after any write: what the memory bound is about. */
  get peakHeld(): number {
    return this.peak;
  }

  write(chunk: Buffer): Buffer {
    if (this.pending.length === 0) {
      this.owned = false;
      this.pending = chunk; // nothing held: scanned in place, no copy
    } else this.append(chunk);
    return this.scanned();
  }

  /** Several chunks as one write (the stream's batch): copied once, after the held bytes. */
  writeAll(chunks: readonly Buffer[]): Buffer {
    if (chunks.length === 1 && chunks[0]) return this.write(chunks[0]);
    this.append(...chunks);
    return this.scanned();
  }

  private scanned(): Buffer {
    const out = this.run(false);
    this.peak = Math.max(this.peak, this.held);
    return out;
  }

  /**
   * pending = pending + chunks, in the engine's own buffer (the arena). When pending already ends
   * where the arena's used part ends and the chunks fit after it, they are copied there and
   * nothing is allocated: bytes before `used` are never written again (emitted views into them
   * may still be in flight), only bytes after it, which no view covers. Otherwise a new arena of
   * up to four times the need (at most PIN_LIMIT) is allocated: one allocation per few chunks
   * instead of one per chunk, and for a slow stream with small chunks a small buffer.
   */
  private append(...chunks: Buffer[]): void {
    const p = this.pending;
    let add = 0;
    for (const c of chunks) add += c.length;
    let a = this.arena;
    let start: number;
    if (this.owned && p.buffer === a.buffer && p.byteOffset + p.length === a.byteOffset + this.used && this.used + add <= a.length) {
      start = this.used - p.length;
    } else {
      const need = p.length + add;
      // Never a slice of the shared pool: `p.buffer === a.buffer` above must mean "in the arena".
      a = this.arena = Buffer.allocUnsafeSlow(Math.max(need, Math.min(PIN_LIMIT, 4 * need)));
      p.copy(a, 0);
      start = 0;
      this.used = p.length;
    }
    for (const c of chunks) this.used += c.copy(a, this.used);
    this.pending = a.subarray(start, this.used);
    this.owned = true;
  }

  /** The end of input (optionally with a last chunk): everything left is scanned and emitted. */
  end(last?: Buffer): Buffer {
    if (last && last.length > 0) this.pending = this.pending.length === 0 ? last : Buffer.concat([this.pending, last]);
    this.owned = false;
    const out = this.run(true);
    this.pending = EMPTY;
    this.ctxLen = 0;
    return out;
  }

  /**
   * Idle flush (the proxy calls it when the upstream pauses, so an SSE event is not held back):
   * emit held bytes up to the last line feed, unless a match could straddle that point (then up
   * to the match's start). What follows the last line feed stays held, so a token that is still
   * arriving is never cut; patterns spanning a line feed other than PEM blocks (handled as
   * blocks) are not in the built-in set. Nothing happens inside a PEM block or a swallow.
   */
  flushSoft(): Buffer {
    if (this.block || this.swallowLeft > 0) return EMPTY;
    const buf = this.pending;
    const from = this.ctxLen;
    const nl = buf.lastIndexOf(0x0a);
    if (nl < from) return EMPTY;
    let cut = chainStart(buf, nl, from);
    // A multi-line secret whose first lines end at the cut: hold them until the rest is known.
    for (let moved = true; moved;) {
      moved = false;
      for (const n of this.m.lineNeedles) {
        const s = n.holdFrom(buf, cut, from);
        if (s < cut) [cut, moved] = [s, true];
      }
    }
    const cands = this.m.find(buf, from).filter((c) => !c.block || this.validBlock(c, buf, false));
    for (let changed = true; changed;) {
      changed = false;
      for (const c of cands) {
        if (c.start < cut && (needEnd(c) > cut || c.block)) {
          cut = c.start; // a block start is left to the normal path, which knows how to drop it
          changed = true;
        }
      }
    }
    if (cut <= from) return EMPTY;
    const out: Buffer[] = [];
    emit(buf, from, cut, plan(cands, from, cut), out, this.report);
    const keep = Math.min(CTX, cut);
    this.pending = Buffer.from(buf.subarray(cut - keep));
    this.ctxLen = keep;
    return out.length === 1 ? (out[0] ?? EMPTY) : Buffer.concat(out);
  }

  private run(final: boolean): Buffer {
    const out: Buffer[] = [];
    for (;;) {
      if (this.block) {
        if (!this.stepBlock(final)) break;
        continue;
      }
      if (this.swallowLeft > 0 && !this.stepSwallow(final)) break;
      const held = this.held;
      if (held === 0 || (!final && held < 2 * this.w && held <= this.maxHold)) break;
      if (!this.stepNormal(final, out)) break;
    }
    // Copy what is kept unless it is a view into our own concat of modest size: a subarray of the
    // caller's chunk would pin the whole (possibly huge) chunk, and it is the caller's. Nothing
    // ever writes into pending, so a view stays valid while the emitted parts are in flight. At
    // the end nothing is kept (end() drops pending): no copy (a small scrubBuffer call spent ~15%
    // of its time on it, docs/benchmarks.md "Hot path", eighth pass).
    if (!final && this.pending.length > 0 && (!this.owned || this.pending.buffer.byteLength > PIN_LIMIT)) {
      this.pending = Buffer.from(this.pending);
      this.owned = true;
    }
    return out.length === 1 ? (out[0] ?? EMPTY) : Buffer.concat(out);
  }

  /** One scan; returns false when nothing more can be done until more data (or the end). */
  private stepNormal(final: boolean, out: Buffer[]): boolean {
    const buf = this.pending;
    const from = this.ctxLen;
    const found = this.m.find(buf, from);
    if (found.length === 0) return this.stepClean(final, buf, from, out);
    const cands = found.filter((c) => !c.block || this.validBlock(c, buf, final));
    let cut = final ? buf.length : buf.length - this.w;
    if (!final) {
      // A candidate that is not wholly before the cut may still change with more data: hold it.
      for (let changed = true; changed;) {
        changed = false;
        for (const c of cands) {
          if (c.start < cut && needEnd(c) > cut) {
            cut = c.start;
            changed = true;
          }
        }
      }
    }
    let forced = false;
    if (cut <= from) {
      if (this.held <= this.maxHold) return false;
      cut = buf.length; // the hold limit wins: redact what we have, swallow the rest of the token
      forced = true;
    }
    let block: Candidate | undefined;
    for (const c of cands) if (c.block && c.start < cut && (!block || c.start < block.start)) block = c;
    if (block) cut = block.start;
    const ranges = plan(cands, from, cut);
    emit(buf, from, cut, ranges, out, this.report);
    if (block?.block) {
      out.push(block.replacement);
      this.report(block.redaction);
      this.block = { p: block.block, dropped: 0 };
      this.pending = buf.subarray(block.end);
      this.ctxLen = 0;
      return true;
    }
    if (forced && ranges.some((r) => r.e === cut)) this.swallowLeft = SWALLOW_CAP;
    const keep = Math.min(CTX, cut);
    this.pending = buf.subarray(cut - keep);
    this.ctxLen = keep;
    return final || forced;
  }

  /**
   * stepNormal when the scan found nothing (most bodies): the same cut and the same output, without
   * the candidate filter, the plan and (at the end) the kept view, none of which has anything to
   * do (docs/benchmarks.md "Hot path", twelfth pass).
   */
  private stepClean(final: boolean, buf: Buffer, from: number, out: Buffer[]): boolean {
    if (final) {
      // The whole rest goes; nothing is kept (end() drops pending anyway), so held becomes 0.
      out.push(from === 0 ? buf : buf.subarray(from));
      this.pending = EMPTY;
      this.ctxLen = 0;
      return true;
    }
    const cut = buf.length - this.w;
    if (cut <= from) return false; // not reached: run() steps only with held ≥ 2·w
    out.push(buf.subarray(from, cut));
    const keep = Math.min(CTX, cut);
    this.pending = buf.subarray(cut - keep);
    this.ctxLen = keep;
    return false;
  }

  /** A begin marker starts a block only if no end marker comes within `minBody` bytes. */
  private validBlock(c: Candidate, buf: Buffer, final: boolean): boolean {
    const b = c.block?.block;
    if (!b) return false;
    if (!final && buf.length < needEnd(c)) return true; // undecided: held by the straddle rule
    b.end.lastIndex = c.end;
    const m = b.end.exec(buf);
    return !(m && m.index < c.end + b.minBody);
  }

  private stepBlock(final: boolean): boolean {
    const st = this.block;
    const b = st?.p.block;
    if (!st || !b) return false;
    const buf = this.pending;
    b.end.lastIndex = 0;
    const m = b.end.exec(buf);
    if (m) {
      const e = m.index + m[0].length;
      this.pending = buf.subarray(e);
      this.ctxLen = 0;
      this.block = undefined;
      return true;
    }
    if (final) {
      this.pending = EMPTY;
      this.ctxLen = 0;
      this.block = undefined;
      return false;
    }
    // Keep only what could be the start of a split end marker; drop the rest of the body.
    const keep = Math.min(buf.length, b.endMaxLength);
    st.dropped += buf.length - keep;
    this.pending = buf.subarray(buf.length - keep);
    this.ctxLen = 0;
    if (st.dropped >= st.p.maxLength) {
      this.block = undefined; // cap reached: resume scanning; what was dropped stays dropped
      return true;
    }
    return false;
  }

  /** Drop token-alphabet bytes after a forced cut; false while the run reaches the buffer's end. */
  private stepSwallow(final: boolean): boolean {
    const buf = this.pending;
    let i = this.ctxLen;
    while (i < buf.length && this.swallowLeft > 0 && isTokenByte(buf[i] ?? 0)) {
      i++;
      this.swallowLeft--;
    }
    const reachedEnd = i === buf.length && this.swallowLeft > 0;
    this.pending = buf.subarray(i);
    this.ctxLen = 0;
    if (reachedEnd && !final) return false;
    this.swallowLeft = 0;
    return true;
  }
}

/** How far the buffer must reach before this candidate can be trusted. */
function needEnd(c: Candidate): number {
  const b = c.block?.block;
  return b ? c.end + b.minBody + b.endMaxLength : c.end;
}

/** Non-overlapping replacement ranges within [from, cut): overlaps are merged (union), so no
 * fragment of either match survives; the earliest match's replacement is used. */
function plan(cands: readonly Candidate[], from: number, cut: number): Range[] {
  const list = cands
    .filter((c) => !c.block && c.start < cut && c.rEnd > from && c.rStart < cut)
    .map((c) => ({ s: Math.max(c.rStart, from), e: Math.min(c.rEnd, cut), c }))
    .sort((a, b) => a.s - b.s || rank(a.c) - rank(b.c) || b.e - a.e || cmp(a.c.redaction.id, b.c.redaction.id));
  const out: Range[] = [];
  for (const { s, e, c } of list) {
    const last = out[out.length - 1];
    if (last && s < last.e) {
      last.e = Math.max(last.e, e);
      if (!last.redactions.some((r) => r.kind === c.redaction.kind && r.id === c.redaction.id)) last.redactions.push(c.redaction);
    } else {
      out.push({ s, e, replacement: c.replacement, redactions: [c.redaction] });
    }
  }
  return out;
}

/** Deterministic tie-break, so the marker never depends on how the body was chunked. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Known secrets first: their replacement (the agent's handle) is the more useful one. */
function rank(c: Candidate): number {
  return c.redaction.kind === 'secret' ? 0 : 1;
}

function emit(buf: Buffer, from: number, cut: number, ranges: readonly Range[], out: Buffer[], report: (r: Redaction) => void): void {
  let pos = from;
  for (const r of ranges) {
    if (r.s > pos) out.push(buf.subarray(pos, r.s));
    out.push(r.replacement);
    for (const red of r.redactions) report(red);
    pos = r.e;
  }
  // The whole input unchanged (most small bodies and header values): the input itself, not a view.
  if (cut > pos) out.push(pos === 0 && cut === buf.length ? buf : buf.subarray(pos, cut));
}

/** Characters tokens are made of (base64, base64url, hex, percent-encoding, JWT dots). */
function isTokenByte(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    c === 0x2b ||
    c === 0x2f ||
    c === 0x3d ||
    c === 0x5f ||
    c === 0x2d ||
    c === 0x2e ||
    c === 0x7e ||
    c === 0x25
  );
}
