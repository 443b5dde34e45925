/**
 * The keyword index's hot loop (keywords.ts, `scan` → `pairHit` → `candidates` → `at`) in
 * WebAssembly: the same bigram, odd-bigram, trigram and 4-gram filters over tables derived from
 * the same ones (a KIND byte per bigram, the trigram kinds per start: keywords.ts), a subset of the
 * starts behind them (every start where a keyword can match, in order), and an exact check of each
 * start against the keywords of its bigram (ASCII case folded); only the starts where a keyword
 * matches reach JavaScript's `at`, which reports them as before. The JavaScript loop, tuned over
 * three rounds, ran at ~1.3 ns per byte (bounds checks and tagged arithmetic on every load); this
 * one needs no check per byte (its memory is its own), ran at ~0.9 ns per byte and was still the
 * largest share of the scrubber's time (docs/benchmarks.md, "Scrubber throughput → Fourth round");
 * now ~0.55 ("Seventh round").
 *
 * The module is emitted here, byte by byte, from the instructions below (no binary in the
 * repository, no toolchain; the instructions are in prefilter-wasm-code.ts). The input is copied
 * into the instance's memory behind the tables and the keywords; the starts found are stored as
 * i32 offsets, in order.
 */

import { checkBody } from './prefilter-wasm-check.js';
import { BIDX, KIND, K_M, K_N, K_ODD, K_TRI, LOWER, ODD, QUAD, SCAN_LOCALS, SINGLE, SLOT, START, THIRD, RET, scanBody } from './prefilter-wasm-code.js';
import { I32, api, moduleOf, type WasmApi, type WasmMemory } from './wasm-encode.js';

const PAGE = 65536;
/** Positions per call at most (even): longer inputs are scanned in segments of this size. */
export const SEGMENT = 128 * 1024;

/** The tables of one KeywordIndex (see keywords.ts for what each bit means). */
export interface PrefilterTables {
  /** Bigrams (little-endian) that begin a set trigram. */
  tri: Uint8Array;
  quad: Uint8Array;
  slot: Uint16Array;
  /** keywords.ts `kinds`: 128 bytes per slot. */
  kinds: Uint8Array;
  flag: Uint8Array;
  start: Uint8Array;
  odd: Uint8Array;
  lower: Uint8Array;
  /** Lower-case bytes that are one-byte keywords. */
  singles: number[];
  /** Keywords of ≥ 2 bytes (lower case) by their lower-case first two bytes (`b0 << 8 | b1`). */
  buckets: Map<number, Buffer[]>;
  /** ORed into the four bytes before the 4-gram hash, and the hash's multiplier and shift. */
  fold: number;
  mul: number;
  shift: number;
}

const modules = new Map<string, object>();

function moduleFor(t: PrefilterTables, w: WasmApi): object {
  const key = `${t.fold},${t.mul},${t.shift}`;
  let m = modules.get(key);
  if (!m) {
    const bytes = moduleOf(
      { name: 'scan', params: [I32, I32, I32, I32, I32, I32], locals: SCAN_LOCALS, body: scanBody(t) },
      { name: 'check', params: [I32, I32, I32, I32, I32], locals: 7, body: checkBody() },
    );
    modules.set(key, (m = new w.Module(bytes)));
  }
  return m;
}

/** One KeywordIndex's loop in WebAssembly; undefined where WebAssembly is not available. */
export class WasmPrefilter {
  private readonly run: (base: number, len: number, out: number, lim: number, last: number, kw: number) => number;
  /** Where the keyword buckets start, and the input (one byte of context before it). */
  private readonly kw: number;
  private readonly base: number;
  /** Bytes copied past a segment's last start: the longest keyword (and the four-byte read). */
  readonly extra: number;
  private readonly u8: Uint8Array;
  private readonly i32: Int32Array;
  /** Where the last scan's starts begin in `list`. */
  at = 0;

  private constructor(t: PrefilterTables, w: WasmApi) {
    let longest = 4;
    let entries = 0;
    let bytes = 0;
    for (const list of t.buckets.values()) {
      entries += list.length;
      for (const k of list) {
        longest = Math.max(longest, k.length);
        bytes += k.length;
      }
    }
    this.extra = longest;
    this.kw = align(THIRD + t.kinds.length);
    const entryAt = align(this.kw + 4 * (t.buckets.size + 1));
    let bytesAt = entryAt + 8 * entries;
    this.base = align(bytesAt + bytes) + 16;
    // Tables, keywords, one segment (and `extra` bytes past it), its starts (at most one per byte).
    const mem: WasmMemory = new w.Memory({ initial: Math.ceil((align(this.base + SEGMENT + longest + 16) + 4 * (SEGMENT + 16)) / PAGE) });
    const inst = new w.Instance(moduleFor(t, w), { m: { mem } });
    this.run = inst.exports.scan as (base: number, len: number, out: number, lim: number, last: number, kw: number) => number;
    this.u8 = new Uint8Array(mem.buffer);
    this.i32 = new Int32Array(mem.buffer);
    const dv = new DataView(mem.buffer);
    this.u8.set(t.quad, QUAD);
    this.u8.set(new Uint8Array(t.slot.buffer, t.slot.byteOffset, t.slot.byteLength), SLOT);
    this.u8.set(t.start, START);
    this.u8.set(t.odd, ODD);
    this.u8.set(t.lower, LOWER);
    for (const b of t.singles) this.u8[SINGLE + b] = 1;
    // KIND per little-endian bigram b (byte p = b & 0xff): the byte the loop reads first (the
    // flags only where the bigram has trigrams: they come from the same keywords).
    const oddRow = new Uint8Array(256);
    for (let o = 0; o < 65536; o++) if (((t.odd[o >>> 3] ?? 0) & (1 << (o & 7))) !== 0) oddRow[o >>> 8] = 1;
    for (let b = 0; b < 65536; b++) {
      const f = t.flag[((b & 0xff) << 8) | (b >>> 8)] ?? 0;
      const tri = ((t.tri[b >>> 3] ?? 0) >>> (b & 7)) & 1;
      this.u8[KIND + b] = (tri ? K_TRI | (f & 2 ? K_M : 0) | (f & 4 ? K_N : 0) : 0) | (oddRow[b & 0xff] ? K_ODD : 0);
    }
    this.u8.set(t.kinds, THIRD);
    // Buckets: BIDX[bigram] = k (1-based); kw[k − 1] … kw[k] bound its entries (addresses).
    let k = 0;
    let e = entryAt;
    dv.setUint32(this.kw, e, true);
    for (const [bigram, list] of t.buckets) {
      k++;
      dv.setUint16(BIDX + 2 * bigram, k, true);
      for (const kwBytes of list) {
        dv.setUint32(e, kwBytes.length, true);
        dv.setUint32(e + 4, bytesAt, true);
        this.u8.set(kwBytes, bytesAt);
        bytesAt += kwBytes.length;
        e += 8;
      }
      dv.setUint32(this.kw + 4 * k, e, true);
    }
  }

  static create(t: PrefilterTables): WasmPrefilter | undefined {
    if (
      !api ||
      t.tri.length !== 8192 ||
      t.quad.length !== SLOT - QUAD ||
      t.slot.length !== 65536 ||
      t.odd.length !== LOWER - ODD ||
      t.start.length !== ODD - START ||
      t.buckets.size > 65535
    )
      return undefined;
    return new WasmPrefilter(t, api);
  }

  /**
   * One segment: the starts c (offsets from `from`, in order) where keywords.ts's `candidates`
   * would call `at` and a keyword matches there, for the even p = 0, 2, … < lim; `last` as in
   * keywords.ts (offset from `from`), its new value in `last` after. Copies buf[from − 1 (when
   * `context`), end); `end − from` ≤ SEGMENT + extra, lim ≤ SEGMENT and ≤ end − from − 3.
   */
  scan(buf: Buffer, from: number, end: number, lim: number, last: number, context: boolean): number {
    const len = end - from;
    if (len > SEGMENT + this.extra || lim > SEGMENT || lim > len - 3) throw new RangeError('prefilter segment too long');
    const out = align(this.base + len + 16);
    this.u8.set(buf.subarray(context ? from - 1 : from, end), context ? this.base - 1 : this.base);
    this.at = out >>> 2;
    return this.run(this.base, len, out, lim, last, this.kw);
  }

  /** `last` after the last scan (an offset from its `from`). */
  get last(): number {
    return this.i32[RET >>> 2] as number;
  }

  /** The last scan's starts: `list[at … at + count)`. */
  get list(): Int32Array {
    return this.i32;
  }
}

function align(n: number): number {
  return (n + 15) & ~15;
}
