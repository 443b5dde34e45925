/**
 * The keyword prefilter: every position where one of the patterns' keywords starts, compared
 * ASCII-case-insensitively. A JavaScript loop over bit sets, not RE2: one case-insensitive RE2
 * alternation of ~250 keywords measured ~80 MB/s on JSON (and an exec per hit on top), this loop
 * ~500 MB per CPU second. Unlike the alternation it reports *every* keyword at every position
 * (no leftmost-longest shadowing), so a keyword inside a longer one needs no special case.
 *
 * Case folding is ASCII only (keywords are token prefixes such as `ghp_`, `xoxb`, `akia`).
 */
import { SEGMENT, WasmPrefilter } from './prefilter-wasm.js';

/** Inputs at least this long go through the WebAssembly filter (prefilter-wasm.ts); shorter ones
 * (header values, audit fields) through the JavaScript loop, which needs no copy. */
export const WASM_MIN = 1024;

export interface KeywordEntry<T> {
  /** Lower-case keyword bytes. */
  bytes: Buffer;
  items: T[];
}

/*
 * The loop steps two bytes at a time: at every second offset p from `from` it reads bytes
 * p … p + 3 as one number and looks up the trigram (p, p + 1, p + 2) in a bit set (behind an 8 KiB
 * bit set over its first two bytes, which stays in L1; the trigram set is compacted per bigram).
 * Every keyword occurrence at c overlaps such a trigram in a known way, so the set holds, for each
 * keyword (any ASCII case, `·` = any byte):
 *
 *   start p:      (k0, k1, k2), or (k0, k1, ·) for a two-byte keyword, (k0, ·, ·) for one byte
 *   start p − 1:  (k1, k2, k3), or (k1, k2, ·) for three bytes
 *   start p + 1:  (·, k0, ·) for a one-byte keyword
 *
 * A two-byte keyword at p − 1 would need (k1, ·, ·), a trigram set for every third byte (on random
 * bytes `sk`, `s.`, `0|` … `9%`, `q~` made two thirds of the set trigrams); instead its k1 sets the
 * bigram bit of (k1, ·) only, and behind it the odd bigram (p − 1, p) is looked up in its own bit
 * set (`odd`).
 *
 * A set trigram is rare (on the bench's pretty-printed JSON ~5% of the offsets: `tat`, `ate`, `api`,
 * `git`…; on random bytes 0.1%, was 2.4% with the (k1, ·, ·) trigrams); then the 4-gram
 * bit (for keywords the 4-gram can vouch for), a bigram table saying which of the three starts to
 * consider, and a start-bigram bit set reject most of them, and the rest are checked exactly
 * (`at`). Half the iterations of a byte-by-byte loop and a quarter of its slow paths: the old loop
 * (one bigram flag per byte, a trigram check behind it) was most of the scrubber's time on JSON,
 * where about one byte in eight starts a flagged bigram.
 *
 * The WebAssembly loop (prefilter-wasm-code.ts) runs the same stages over tables derived from
 * these, with two differences that make it exact per start: a byte per bigram (`KIND`: has a
 * trigram slot, k1 of a two-byte keyword, the M and N flags) instead of the bigram bit, and per
 * trigram the kinds of keywords it stands for (`kinds`: short or long, at p or at p − 1), so a
 * trigram set by `pat` at p − 1 does not make p a candidate because `atlassian` starts with `at`.
 */
/** Per bigram at p: a keyword may start at p. */
const P = 1;
/** A keyword may start at p − 1. */
const M = 2;
/** A one-byte keyword may sit at p + 1. */
const N = 4;

const LOWER = new Uint8Array(256);
for (let i = 0; i < 256; i++) LOWER[i] = i >= 0x41 && i <= 0x5a ? i + 0x20 : i;
const ANY = Array.from({ length: 256 }, (_, i) => i);

export class KeywordIndex<T> {
  /** Keywords of one byte, by (lower-case) byte. */
  private readonly single: (KeywordEntry<T>[] | undefined)[] = new Array(256);
  /** Keywords of ≥2 bytes by their lower-case first two bytes (a flat array: Map.get per text
   * bigram was the loop's main cost on English-like text). */
  private readonly byBigram: (KeywordEntry<T>[] | undefined)[] = new Array<KeywordEntry<T>[] | undefined>(65536).fill(undefined);
  /** Per raw bigram (any ASCII case): the P/M/N bits above (64 KiB). */
  private readonly flag = new Uint8Array(65536);
  /** Bit set over raw bigrams that begin a set trigram or end a two-byte keyword's (k1, ·) (8 KiB,
   * stays in L1): read first. */
  private readonly pair = new Uint8Array(1 << 13);
  /** The bigrams of `pair` that begin a set trigram (the others are there for `odd` only). */
  private readonly triPair = new Uint8Array(1 << 13);
  /** The trigram set, compacted: for each bigram in `triPair`, a 256-bit set of third bytes at
   * `third[64 · slot[bigram] …]`, followed in the same 64-byte line by the same layout for the
   * trigrams of the keywords the 4-gram cannot vouch for (≤ 3 bytes at p, 3–4 bytes at p − 1, one
   * byte at p + 1; a hit there always goes to the exact check); interleaved, one cache line per
   * check (JSON +5–13%). A flat 2 MiB trigram set missed the cache on binary data
   * (random bigrams), more so in the proxy where TLS evicts it; this is 256 KiB plus 32 bytes per
   * set bigram (~150 KiB for the built-in set and one secret, both halves), and only the slots of bigrams that
   * occur are touched. 16-bit slots (a bigram table of 128 KiB, was 256 KiB with 32-bit ones): the
   * scrubber alone went from ~240 to ~290 MB per CPU second on JSON (cache). */
  private readonly slot = new Uint16Array(65536);
  private readonly third: Uint8Array;
  /** The same trigrams for the WebAssembly loop, per slot 128 bytes: a nibble per third byte, the
   * kinds of keyword occurrence the trigram stands for (SHORT_P, LONG_P, SHORT_M, LONG_M). */
  private readonly kinds: Uint8Array;
  /** Bit set over raw bigrams (any case) where a keyword can start: its first two bytes, or its
   * one byte and anything. A set trigram bit is checked against it before the exact check. */
  private readonly start = new Uint8Array(1 << 13);
  /** Bit set over the raw bigram (p − 1, p), little-endian (byte p − 1 lowest): the two-byte
   * keywords (any case), tested at start p − 1 behind the pair bit of (p, p + 1). */
  private readonly odd = new Uint8Array(1 << 13);
  /** Second stage behind a set trigram bit (see QUAD_BITS): a hashed bit set of the four-byte
   * grams (letters folded by `| 0x20`) a keyword of ≥ 4 bytes at p, or of ≥ 5 at p − 1, shows
   * there. With ~230 keywords one trigram in 16 of English-like text is set, but almost no 4-gram
   * is, so the exact checks behind it mostly go away. */
  private readonly quad = new Uint8Array(1 << (QUAD_BITS - 3));
  readonly size: number;
  /** The same filters in WebAssembly, made at the first long input; null: not available. */
  private wasm: WasmPrefilter | null | undefined;
  /** Tests compare both loops: false keeps every input on the JavaScript one. */
  useWasm = true;

  constructor(keywords: ReadonlyMap<string, T[]>) {
    let n = 0;
    // The trigram marks (bytes, −1 for any byte, and which start they stand for), written into
    // the compacted tables once the bigrams that need a slot are known.
    const marks: [number, number, number, number][] = [];
    for (const [k, items] of keywords) {
      // ASCII case folded below; other letters stay as written (patterns.ts adds their case variants).
      const bytes = Buffer.from(k, 'utf8');
      if (bytes.length === 0) continue;
      for (let i = 0; i < bytes.length; i++) bytes[i] = LOWER[bytes[i] ?? 0] ?? 0;
      const e: KeywordEntry<T> = { bytes, items };
      n++;
      const [b0 = 0, b1 = -1, b2 = -1, b3 = -1] = bytes;
      if (bytes.length === 1) (this.single[b0] ??= []).push(e);
      else (this.byBigram[(b0 << 8) | b1] ??= []).push(e);
      // Start p: the keyword's first three bytes (wildcards past its end).
      marks.push([b0, b1, b2, bytes.length >= 4 ? LONG_P : SHORT_P]);
      if (bytes.length >= 4) this.markQuad(b0, b1, b2, b3);
      for (const v0 of variants(b0)) {
        for (const v1 of variants(b1)) {
          const b = (v0 << 8) | v1;
          this.start[b >>> 3] = (this.start[b >>> 3] ?? 0) | (1 << (b & 7));
        }
      }
      this.markFlag(b0, b1, P);
      if (bytes.length === 1) {
        marks.push([-1, b0, -1, SHORT_M]);
        this.markFlag(-1, b0, N);
      } else if (bytes.length === 2) {
        // Start p − 1: the odd bigram (p − 1, p) itself, tested behind the pair bit of (k1, ·)
        // (a trigram would have to pass every byte after k1: on random bytes most of the passes).
        for (const v1 of variants(b1)) {
          for (const any of ANY) {
            const g = v1 | (any << 8);
            this.pair[g >>> 3] = (this.pair[g >>> 3] ?? 0) | (1 << (g & 7));
          }
          for (const v0 of variants(b0)) {
            const o = v0 | (v1 << 8);
            this.odd[o >>> 3] = (this.odd[o >>> 3] ?? 0) | (1 << (o & 7));
          }
        }
      } else {
        marks.push([b1, b2, b3, bytes.length >= 5 ? LONG_M : SHORT_M]);
        if (bytes.length >= 5) this.markQuad(b1, b2, b3, bytes[4] ?? 0);
        this.markFlag(b1, b2, M);
      }
    }
    this.size = n;
    for (const [a, b] of marks) this.forTri(a, b, -2, (g) => setBit(this.pair, g) && setBit(this.triPair, g));
    let slots = 0;
    for (let b = 0; b < 65536; b++) if (((this.triPair[b >>> 3] ?? 0) & (1 << (b & 7))) !== 0) this.slot[b] = slots++;
    // Interleaved: a slot's trigram bits and short-keyword bits share one 64-byte line.
    this.third = new Uint8Array(64 * slots);
    this.kinds = new Uint8Array(128 * slots);
    for (const [a, b, c, kind] of marks) {
      this.forTri(a, b, c, (g, v2) => {
        const at = 64 * (this.slot[g] ?? 0) + (v2 >>> 3);
        this.third[at] = (this.third[at] ?? 0) | (1 << (v2 & 7));
        if (kind === SHORT_P || kind === SHORT_M) this.third[at + 32] = (this.third[at + 32] ?? 0) | (1 << (v2 & 7));
        const at4 = 128 * (this.slot[g] ?? 0) + (v2 >>> 1);
        this.kinds[at4] = (this.kinds[at4] ?? 0) | (kind << (4 * (v2 & 1)));
      });
    }
  }

  /** Calls f(bigram, third byte) for every trigram (any case) matching a, b, c (−1: any byte;
   * −2: the third byte is not needed, f gets 0). Bigrams in little-endian order (byte p lowest):
   * the loop reads four bytes as one number. */
  private forTri(a: number, b: number, c: number, f: (g: number, v2: number) => unknown): void {
    for (const v0 of variants(a)) for (const v1 of variants(b)) for (const v2 of c === -2 ? [0] : variants(c)) f(v0 | (v1 << 8), v2);
  }

  private markQuad(a: number, b: number, c: number, d: number): void {
    const h = quadHash(a | (b << 8) | (c << 16) | (d << 24) | FOLD);
    this.quad[h >>> 3] = (this.quad[h >>> 3] ?? 0) | (1 << (h & 7));
  }

  private markFlag(a: number, b: number, bit: number): void {
    for (const v0 of variants(a)) for (const v1 of variants(b)) this.flag[(v0 << 8) | v1] = (this.flag[(v0 << 8) | v1] ?? 0) | bit;
  }

  /** Calls `hit(position, entry)` for every keyword occurrence starting in [from, buf.length),
   * in position order. */
  scan(buf: Buffer, from: number, hit: (pos: number, e: KeywordEntry<T>) => void): void {
    const n = buf.length;
    if (from >= n) return;
    if (this.useWasm && n - from >= WASM_MIN) {
      const w = this.wasm === undefined ? (this.wasm = this.makeWasm()) : this.wasm;
      if (w) return this.scanWith(w, buf, from, hit);
    }
    // The tables hold every case variant, so the hot loop reads raw bytes only. Indexes are in
    // bounds by construction; `as number` keeps the loop free of the undefined checks that
    // noUncheckedIndexedAccess would otherwise add per byte. The bigrams at even offsets from
    // `from` are read byte by byte: the inputs that come here are short (header values, audit
    // fields, small bodies), where a DataView and a Uint16Array over each one cost more than the
    // loop (scrubBuffer of 16 / 234 / 1,000 bytes ~0.65 / 1.75 / 4.7 → ~0.5 / 1.44 / 4.1 µs,
    // docs/benchmarks.md "Hot path", eighth pass).
    const pair = this.pair;
    const end = n - 3;
    let last = from - 1; // the highest start already checked: each start is checked once, in order
    for (let p = from; p < end; p += 2) {
      const b = (buf[p] as number) | ((buf[p + 1] as number) << 8);
      if (((pair[b >>> 3] as number) & (1 << (b & 7))) !== 0) last = this.pairHit(buf, p, b | ((buf[p + 2] as number) << 16) | ((buf[p + 3] as number) << 24), last, hit);
    }
    // Starts whose four-byte read would reach past the end: checked one by one.
    for (let c = Math.max(last + 1, n - 4, from); c < n; c++) this.at(buf, c, hit);
  }

  private makeWasm(): WasmPrefilter | null {
    const buckets = new Map<number, Buffer[]>();
    this.byBigram.forEach((list, b) => {
      if (list)
        buckets.set(
          b,
          list.map((e) => e.bytes),
        );
    });
    const singles = this.single.flatMap((list, b) => (list ? [b] : []));
    const t = { tri: this.triPair, quad: this.quad, slot: this.slot, kinds: this.kinds, flag: this.flag, start: this.start, odd: this.odd, lower: LOWER, singles, buckets };
    try {
      return WasmPrefilter.create({ ...t, fold: FOLD, mul: QUAD_MUL, shift: 32 - QUAD_BITS }) ?? null;
    } catch {
      // No memory for an instance (address space, a limit): this index keeps the JavaScript loop.
      return null;
    }
  }

  /** `scan` run in WebAssembly up to the exact check: only starts where a keyword matches reach
   * `at`, in order; `last` comes back so the last starts are checked as in `scan`. */
  private scanWith(w: WasmPrefilter, buf: Buffer, from: number, hit: (pos: number, e: KeywordEntry<T>) => void): void {
    const n = buf.length;
    let last = from - 1;
    // Segments of SEGMENT positions; each copies the longest keyword's length after it (the
    // exact check) and the byte before it (a start at p − 1).
    for (let s = from; s + 3 < n; s += SEGMENT) {
      const end = Math.min(n, s + SEGMENT + w.extra);
      const count = w.scan(buf, s, end, Math.min(SEGMENT, end - s - 3), last - s, s > from);
      const list = w.list;
      const at = w.at;
      for (let k = 0; k < count; k++) this.at(buf, s + (list[at + k] as number), hit);
      last = s + w.last;
    }
    for (let c = Math.max(last + 1, n - 4, from); c < n; c++) this.at(buf, c, hit);
  }

  /** Past a set pair bit at p (bytes p … p + 3 in v): a two-byte keyword at p − 1 (the odd
   * bigram), then the trigram stage and the starts it names. */
  private pairHit(buf: Buffer, p: number, v: number, last: number, hit: (pos: number, e: KeywordEntry<T>) => void): number {
    if (p - 1 > last) {
      const o = (buf[p - 1] as number) | ((buf[p] as number) << 8);
      if (((this.odd[o >>> 3] as number) & (1 << (o & 7))) !== 0) {
        this.at(buf, p - 1, hit);
        last = p - 1;
      }
    }
    const b = v & 0xffff;
    if (((this.triPair[b >>> 3] as number) & (1 << (b & 7))) === 0) return last;
    return this.passes(v) ? this.candidates(buf, p, last, hit) : last;
  }

  /** Bytes p … p + 3 (little-endian) past the bigram check: the trigram, then the short-keyword
   * trigram or the 4-gram filter. */
  private passes(v: number): boolean {
    const b = v & 0xffff;
    const c = (v >>> 16) & 0xff;
    const ti = ((this.slot[b] as number) << 6) | (c >>> 3);
    const bit = 1 << (c & 7);
    if (((this.third[ti] as number) & bit) === 0) return false;
    if (((this.third[ti + 32] as number) & bit) !== 0) return true;
    const h = quadHash(v | FOLD);
    return ((this.quad[h >>> 3] as number) & (1 << (h & 7))) !== 0;
  }

  private candidates(buf: Buffer, p: number, last: number, hit: (pos: number, e: KeywordEntry<T>) => void): number {
    const f = this.flag[((buf[p] as number) << 8) | (buf[p + 1] as number)] as number;
    if ((f & M) !== 0 && p - 1 > last) {
      if (this.startsAt(buf, p - 1)) this.at(buf, p - 1, hit);
      last = p - 1;
    }
    if ((f & P) !== 0 && p > last) {
      this.at(buf, p, hit);
      last = p;
    }
    if ((f & N) !== 0) {
      if (this.startsAt(buf, p + 1)) this.at(buf, p + 1, hit);
      last = p + 1;
    }
    return last;
  }

  /** Whether a keyword can start at i, by its first two bytes (cheap; `at` is exact). */
  private startsAt(buf: Buffer, i: number): boolean {
    const b = ((buf[i] as number) << 8) | ((buf[i + 1] ?? 0) as number);
    return ((this.start[b >>> 3] as number) & (1 << (b & 7))) !== 0;
  }

  /** Every keyword starting at i, checked exactly. */
  private at(buf: Buffer, i: number, hit: (pos: number, e: KeywordEntry<T>) => void): void {
    const c = LOWER[buf[i] as number] as number;
    const s = this.single[c];
    if (s !== undefined) for (const e of s) hit(i, e);
    if (i + 1 >= buf.length) return;
    const list = this.byBigram[(c << 8) | (LOWER[buf[i + 1] as number] as number)];
    if (list !== undefined) for (const e of list) if (matchesAt(buf, i, e.bytes)) hit(i, e);
  }
}

/** Trigram kinds (third4's nibble bits): a keyword of ≤ 3 bytes at p, one of ≥ 4 at p (the 4-gram
 * vouches), one of ≤ 4 at p − 1 or of one byte at p + 1, one of ≥ 5 at p − 1 (the 4-gram vouches). */
const SHORT_P = 1;
const LONG_P = 2;
const SHORT_M = 4;
const LONG_M = 8;

function setBit(set: Uint8Array, i: number): true {
  set[i >>> 3] = (set[i >>> 3] ?? 0) | (1 << (i & 7));
  return true;
}

/** log2 of the 4-gram bit set's size in bits (32 KiB): ~500 grams set it ~0.2% full. */
const QUAD_BITS = 18;
const QUAD_MUL = 0x9e3779b1;
/** ORs 0x20 into every byte: folds ASCII case (and maps some other bytes together, which only
 * adds false positives to a filter that an exact check follows). */
const FOLD = 0x20202020;

function quadHash(v: number): number {
  return Math.imul(v, QUAD_MUL) >>> (32 - QUAD_BITS);
}

/** A lower-case byte and its upper-case form (ASCII letters only); −1: every byte. */
function variants(b: number): number[] {
  if (b < 0) return ANY;
  return b >= 0x61 && b <= 0x7a ? [b, b - 0x20] : [b];
}

function matchesAt(buf: Buffer, i: number, kw: Buffer): boolean {
  if (i + kw.length > buf.length) return false;
  for (let j = 2; j < kw.length; j++) if ((LOWER[buf[i + j] ?? 0] ?? 0) !== kw[j]) return false;
  return true;
}
