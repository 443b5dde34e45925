/**
 * Finding things to redact in one byte window. Pure: no stream state here (see engine.ts).
 *
 * Everything works on Buffers: RE2 reports byte offsets for Buffer input, so non-UTF-8 bytes pass
 * through untouched and offsets never drift. Known secrets' ASCII forms are keywords in the same
 * index as the token patterns' keywords (keywords.ts, one byte loop over the input for both):
 * a hit is verified in place, byte for byte. Token patterns run only in windows around their
 * keyword hits (runWindow below); the
 * one keyword-less built-in is a byte-loop run scan (runs.ts). docs/scrubbing.md, "How it is fast".
 * RE2.Set was measured and rejected: with ~220 gitleaks rules its DFA thrashes on varied text
 * (~100 ms per KiB) and it may give up silently when its memory budget is hit.
 */
import { HANDLE_PREFIX, HANDLE_RE } from '../core/handle-shape.js';
import type { CompiledPattern } from './patterns.js';
import { checkBits, passesCheck, shannonEntropy } from './patterns.js';
import { secretNeedles, type SecretForm } from './encodings.js';
import { B64, DecodedFinder, MIN_WRAPPED_LINE, type DecodedNeedle } from './decoded.js';
import { KeywordIndex, type KeywordEntry } from './keywords.js';
import { ByteNeedle } from './byte-needles.js';
import { LineNeedle } from './soft-flush.js';
import { findRuns } from './runs.js';

export interface KnownSecret {
  name: string;
  value: string;
  replacement: string;
}

export type Redaction = { kind: 'secret' | 'pattern'; id: string };

/** The forms searched again after decoding (escaped runs, wrapped base64): the plain spellings. */
const DECODED_FORMS = new Set<SecretForm>(['raw', 'hex', 'base64', 'base64url', 'base64-embedded', 'base64url-embedded']);

export interface Candidate {
  /** Whole match: what must be visible before the match can be trusted. */
  start: number;
  end: number;
  /** The bytes actually replaced. */
  rStart: number;
  rEnd: number;
  replacement: Buffer;
  redaction: Redaction;
  /** Set for a block pattern's begin marker. */
  block?: CompiledPattern;
}

interface NeedleInfo {
  replacement: Buffer;
  redaction: Redaction;
}

/** A known secret's ASCII form in the keyword index; the index matches ASCII-caselessly, so a
 * case-sensitive form is compared exactly at each hit. */
class NeedleItem {
  constructor(
    readonly bytes: Buffer,
    readonly caseless: boolean,
    readonly info: NeedleInfo,
  ) {}
}

type Indexed = CompiledPattern | NeedleItem;

const EMPTY_BUF = Buffer.alloc(0);
/** Never pushed to: findAll's `cOut` between calls. */
const NO_CANDIDATES: Candidate[] = [];

export class Matcher {
  readonly plain: readonly CompiledPattern[];
  readonly blocks: readonly CompiledPattern[];
  /** Longest match any finder can produce, in bytes (block patterns: their begin lookahead). */
  readonly window: number;
  readonly hasUnbounded: boolean;
  private readonly needles = new Map<string, NeedleInfo>();
  /** Needles with non-ASCII bytes: the index folds ASCII case only, so these use indexOf. */
  private readonly byteNeedles: ByteNeedle<NeedleInfo>[] = [];
  /** Forms holding a line feed (a multi-line secret): the idle flush must not cut inside one. */
  readonly lineNeedles: LineNeedle[] = [];
  /** Patterns without keywords: run on every window (as a regex, or as a run scan). */
  private readonly always: CompiledPattern[] = [];
  /** Run-scan patterns whose runs lie inside the decoded finder's long base64 runs: scanned
   * only inside those (one pass over the buffer for both), not over the whole buffer. */
  private readonly onRuns: CompiledPattern[] = [];
  private readonly alwaysBlocks: CompiledPattern[] = [];
  /** Keyword → the patterns (plain and block) that need it, and the known secrets' ASCII forms. */
  private readonly keywords: KeywordIndex<Indexed> | undefined;
  private readonly unboundedWindow: number;
  /** Known secrets spelled with mixed escapes or wrapped base64 (decoded.ts). */
  private readonly decoded: DecodedFinder<NeedleInfo>;

  constructor(
    secrets: readonly KnownSecret[],
    patterns: readonly CompiledPattern[],
    unboundedWindow: number,
    private readonly isHandle?: (text: string) => boolean,
  ) {
    this.plain = patterns.filter((p) => p.block === undefined);
    this.blocks = patterns.filter((p) => p.block !== undefined);
    this.unboundedWindow = unboundedWindow;
    let window = 0;
    const byKeyword = new Map<string, Indexed[]>();
    const decodedNeedles: DecodedNeedle<NeedleInfo>[] = [];
    for (const s of secrets) {
      if (s.value.length === 0) continue; // an empty secret would match everywhere; nothing to hide
      const info: NeedleInfo = { replacement: Buffer.from(s.replacement, 'utf8'), redaction: { kind: 'secret', id: s.name } };
      for (const n of secretNeedles(s.value)) {
        if (this.needles.has(n.bytes)) continue; // same bytes from an earlier secret: first wins
        if (DECODED_FORMS.has(n.form)) decodedNeedles.push({ bytes: n.bytes, caseless: n.caseless === true, base64: n.form.startsWith('base64'), info });
        window = Math.max(window, n.bytes.length);
        if (n.bytes.includes('\n')) this.lineNeedles.push(new LineNeedle(Buffer.from(n.bytes, 'latin1'), n.caseless === true));
        if (/^[\x00-\x7f]*$/.test(n.bytes)) {
          this.needles.set(n.bytes, info);
          const k = n.bytes.toLowerCase();
          byKeyword.set(k, [...(byKeyword.get(k) ?? []), new NeedleItem(Buffer.from(n.bytes, 'latin1'), n.caseless === true, info)]);
        } else {
          this.needles.set(n.bytes, info);
          this.byteNeedles.push(new ByteNeedle(Buffer.from(n.bytes, 'latin1'), n.caseless === true, info));
        }
      }
    }

    this.decoded = new DecodedFinder(decodedNeedles);
    window = Math.max(window, this.decoded.window);
    let unbounded = false;
    for (const p of this.plain) {
      if (Number.isFinite(p.maxLength)) window = Math.max(window, p.maxLength);
      else unbounded = true;
    }
    for (const p of this.blocks) {
      const b = p.block;
      if (b) window = Math.max(window, b.beginMaxLength + b.minBody + b.endMaxLength);
    }
    if (unbounded) window = Math.max(window, unboundedWindow);
    this.hasUnbounded = unbounded;
    this.window = window;
    for (const p of patterns) {
      if (!p.keywords) {
        (p.block ? this.alwaysBlocks : sharesRunPass(p) ? this.onRuns : this.always).push(p);
        continue;
      }
      for (const k of p.keywords) byKeyword.set(k, [...(byKeyword.get(k) ?? []), p]);
    }
    this.keywords = byKeyword.size > 0 ? new KeywordIndex(byKeyword) : undefined;
  }

  get empty(): boolean {
    return this.needles.size === 0 && this.plain.length === 0 && this.blocks.length === 0;
  }

  /**
   * Every candidate whose match starts at or after `from` (bytes before `from` are context only).
   * Token-pattern finds inside a Turret handle are dropped: a handle is not a secret (it is what
   * secrets are replaced with), and a random run inside one can look like a token.
   */
  find(buf: Buffer, from: number): Candidate[] {
    const out = this.findAll(buf, from);
    const isHandle = this.isHandle;
    if (!isHandle || out.length === 0 || !out.some((c) => c.redaction.kind === 'pattern') || buf.indexOf(HANDLE_PREFIX) < 0) return out;
    const spans: Array<[number, number]> = [];
    for (const m of buf.toString('latin1').matchAll(HANDLE_RE)) if (isHandle(m[0])) spans.push([m.index, m.index + m[0].length]);
    if (spans.length === 0) return out;
    return out.filter((c) => c.redaction.kind !== 'pattern' || !spans.some(([s, e]) => c.start < e && c.end > s));
  }

  // findAll's state while it runs, read by the callbacks below (made once per matcher, not once
  // per call: findAll is synchronous and never re-entered). Cleared after each call, so no input
  // stays reachable from a matcher (docs/benchmarks.md "Hot path", twelfth pass).
  private cBuf: Buffer = EMPTY_BUF;
  private cFrom = 0;
  private cOut: Candidate[] = [];
  private cWins: Map<CompiledPattern, Win[]> | undefined;
  private cFirst: Map<CompiledPattern, number> | undefined;

  private readonly onDecoded = (start: number, end: number, info: NeedleInfo): void => {
    this.cOut.push({ start, end, rStart: start, rEnd: end, ...info });
  };

  private readonly onRun = (s: number, e: number, bits: number): void => {
    // A run whose bytes' class bits fail a pattern's check holds no part that passes it
    // (a git SHA: no upper case): not scanned for that pattern's runs.
    for (const p of this.onRuns) if (checkBits(p.check, bits)) this.runRuns(p, this.cBuf, s, this.cOut, e);
  };

  private readonly onKeyword = (k: number, e: KeywordEntry<Indexed>): void => {
    const buf = this.cBuf;
    for (const p of e.items) {
      if (p instanceof NeedleItem) {
        // Every form found at every start (overlaps are merged by the engine: the union goes).
        const end = k + p.bytes.length;
        if (p.caseless || buf.compare(p.bytes, 0, p.bytes.length, k, end) === 0) this.cOut.push({ start: k, end, rStart: k, rEnd: end, ...p.info });
        continue;
      }
      // A hit whose case cannot start this pattern's match (lead.ts): its real starts are hits of their own.
      if (p.lead !== undefined && !leadAt(p.lead, e.bytes, buf, k)) continue;
      // Every match starts at a keyword after a non-word byte (lead.ts boundaryStart): one after a word byte ("docs.") starts none.
      if (p.boundary && k > 0 && WORD_BYTE[buf[k - 1] as number] === 1) continue;
      if (p.block || !Number.isFinite(p.maxLength)) {
        const first = (this.cFirst ??= new Map());
        if (!first.has(p)) first.set(p, k);
        continue;
      }
      addWindow((this.cWins ??= new Map()), p, Math.max(this.cFrom, k - p.maxLength), Math.min(buf.length, k + e.bytes.length + p.maxLength + 1), k + e.bytes.length);
    }
  };

  private findAll(buf: Buffer, from: number): Candidate[] {
    const out: Candidate[] = [];
    for (const n of this.byteNeedles) n.find(buf, from, (s, e) => out.push({ start: s, end: e, rStart: s, rEnd: e, ...n.info }));
    if (from >= buf.length) return out;
    this.cBuf = buf;
    this.cFrom = from;
    this.cOut = out;
    try {
      this.decoded.find(buf, from, this.onDecoded, this.onRuns.length === 0 ? undefined : this.onRun);
      for (const p of this.always) {
        if (p.run) this.runRuns(p, buf, from, out);
        else this.runPattern(p, buf, from, out);
      }
      for (const p of this.alwaysBlocks) this.runBegin(p, buf, from, out);
      if (!this.keywords) return out;
      // Keywords occur inside every match (a documented contract of PatternSpec.keywords), so a
      // bounded pattern (match ≤ L bytes) only needs to run on [k − L, k + L] around each hit k.
      // The maps are made on the first hit that needs them: most small bodies have none.
      this.keywords.scan(buf, from, this.onKeyword);
      const wins = this.cWins;
      const first = this.cFirst;
      if (wins) for (const [p, list] of wins) for (const w of list) this.runWindow(p, buf, w, out);
      if (first)
        for (const [p, k] of first) {
          // Unbounded and block patterns: a whole-buffer pass from a window before the first hit.
          const start = Math.max(from, k - (p.block ? p.block.beginMaxLength : this.unboundedWindow) - 1);
          if (p.block) this.runBegin(p, buf, start, out);
          else this.runPattern(p, buf, start, out);
        }
      return out;
    } finally {
      this.cBuf = EMPTY_BUF;
      this.cOut = NO_CANDIDATES;
      this.cWins = undefined;
      this.cFirst = undefined;
    }
  }

  /**
   * One window of a bounded pattern, scanned on buf[0, w.end) from w.start: the real bytes before
   * w.start stay visible (\b, ^), only the end is artificial. A match starting at s ≤ w.trust is
   * exactly the whole-buffer match at s, since no attempt from s can read past s + L < w.end.
   * Every start is tried (s + 1 after a match), so the result does not depend on where a window
   * began; overlapping finds are merged by the engine.
   */
  private runWindow(p: CompiledPattern, buf: Buffer, w: Win, out: Candidate[]): void {
    const view = w.end === buf.length ? buf : buf.subarray(0, w.end);
    const re = p.re;
    re.lastIndex = w.start;
    for (let m = re.exec(view); m; m = re.exec(view)) {
      if (m.index > w.trust) break;
      this.accept(p, buf, m, out);
      re.lastIndex = m.index + 1;
    }
  }

  private runRuns(p: CompiledPattern, buf: Buffer, from: number, out: Candidate[], to = buf.length): void {
    const spec = p.run;
    if (!spec) return;
    const marker = markerOf(p);
    findRuns(
      spec,
      buf,
      from,
      (s, e) => {
        // The check first: it rejects hex hashes (git SHAs) without the entropy's table.
        if (!passesCheck(p.check, buf, s, e)) return;
        if (p.minEntropy > 0 && shannonEntropy(buf, s, e) < p.minEntropy) return;
        out.push({ start: s, end: e, rStart: s, rEnd: e, replacement: marker, redaction: { kind: 'pattern', id: p.id } });
      },
      to,
    );
  }

  private runPattern(p: CompiledPattern, buf: Buffer, from: number, out: Candidate[]): void {
    const re = p.re;
    re.lastIndex = from;
    for (let m = re.exec(buf); m; m = re.exec(buf)) {
      if (m[0].length === 0) {
        re.lastIndex = m.index + 1; // cannot happen (compile rejects empty matches); never loop
        continue;
      }
      this.accept(p, buf, m, out);
    }
  }

  private accept(p: CompiledPattern, buf: Buffer, m: { index: number; 0: Buffer; indices?: RegExpIndicesArray }, out: Candidate[]): void {
    const start = m.index;
    const end = start + m[0].length;
    if (end === start) return;
    const [rs, re_] = secretSpan(m.indices, p.secretGroup) ?? [start, end];
    if (re_ <= rs) return;
    if (p.minEntropy > 0 && shannonEntropy(buf, rs, re_) < p.minEntropy) return;
    if (!passesCheck(p.check, buf, rs, re_)) return;
    out.push({ start, end, rStart: rs, rEnd: re_, replacement: markerOf(p), redaction: { kind: 'pattern', id: p.id } });
  }

  private runBegin(p: CompiledPattern, buf: Buffer, from: number, out: Candidate[]): void {
    const re = p.re;
    re.lastIndex = from;
    const marker = markerOf(p);
    for (let m = re.exec(buf); m; m = re.exec(buf)) {
      const end = m.index + m[0].length;
      out.push({ start: m.index, end, rStart: m.index, rEnd: end, replacement: marker, redaction: { kind: 'pattern', id: p.id }, block: p });
    }
  }
}

/** RE2's `\w` (ASCII): 1 per word byte. */
const WORD_BYTE = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_') WORD_BYTE[c.charCodeAt(0)] = 1;

/**
 * False when keyword `kw` (lower case) begins with the pattern's lead but buf at k does not hold
 * the lead exactly (lead.ts): no match of the pattern starts there. A keyword that does not begin
 * with the lead (one found elsewhere in a match) is always true.
 */
function leadAt(lead: Buffer, kw: Buffer, buf: Buffer, k: number): boolean {
  const n = lead.length;
  if (kw.length < n) return true;
  for (let i = 0; i < n; i++) {
    const c = lead[i] as number;
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== kw[i]) return true;
  }
  return k + n <= buf.length && buf.compare(lead, 0, n, k, k + n) === 0;
}

/** A run of N ≥ MIN_WRAPPED_LINE bytes of a class inside the base64 alphabet lies inside a
 * maximal base64 run of ≥ N bytes, whose ends are outside the class: scanning only those runs
 * finds the same runs as scanning the whole buffer (test/unit/scrub-runs.test.ts). */
function sharesRunPass(p: CompiledPattern): boolean {
  const r = p.run;
  if (!r || r.length < MIN_WRAPPED_LINE) return false;
  for (let c = 0; c < 256; c++) if (r.table[c] === 1 && B64[c] !== 1) return false;
  return true;
}

/** A bounded pattern's scan window: scan from `start` on buf[0, end); trust starts ≤ `trust`. */
interface Win {
  start: number;
  end: number;
  trust: number;
}

/** Hits arrive in position order, so a window either extends the last one or starts a new one. */
function addWindow(wins: Map<CompiledPattern, Win[]>, p: CompiledPattern, start: number, end: number, trust: number): void {
  let list = wins.get(p);
  if (!list) wins.set(p, (list = []));
  const last = list[list.length - 1];
  if (last && start <= last.end) {
    last.end = Math.max(last.end, end);
    last.trust = Math.max(last.trust, trust);
  } else list.push({ start, end, trust });
}

const markers = new WeakMap<CompiledPattern, Buffer>();
function markerOf(p: CompiledPattern): Buffer {
  let b = markers.get(p);
  if (!b) markers.set(p, (b = Buffer.from(`[REDACTED:${p.id}]`, 'latin1')));
  return b;
}

/** The [start, end) of the group to redact: explicit group, else the first non-empty one. */
function secretSpan(indices: RegExpIndicesArray | undefined, group: number | undefined): [number, number] | undefined {
  if (!indices) return undefined;
  if (group !== undefined) {
    const g = indices[group];
    return g ? [g[0], g[1]] : undefined;
  }
  for (let i = 1; i < indices.length; i++) {
    const g = indices[i];
    if (g && g[1] > g[0]) return [g[0], g[1]];
  }
  return indices[0] ? [indices[0][0], indices[0][1]] : undefined;
}
