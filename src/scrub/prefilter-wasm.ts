/**
 * The keyword index's hot loop (keywords.ts, `scan`) as a WebAssembly function: the same bigram,
 * trigram and 4-gram filters over the same tables, emitting the offsets that pass; what follows
 * (`candidates`, the exact check) stays in JavaScript. The JavaScript loop, tuned over three
 * rounds, ran at ~1.3 ns per byte (bounds checks and tagged arithmetic on every load); this one
 * needs no check per byte (its memory is its own) and was the largest share of the scrubber's
 * time (docs/benchmarks.md, "Scrubber throughput → Fourth round").
 *
 * The module is emitted here, byte by byte, from the instructions below (no binary in the
 * repository, no toolchain): one function `scan(base, len, out) → count`. The input is copied
 * into the instance's memory behind the tables; every even offset p (from 0) with p + 3 < len
 * whose four bytes pass the filters is stored as an i32 at `out`, in order.
 */

/** Table offsets in the instance's memory (constants of the emitted code). */
const PAIR = 0; // 8 KiB bit set over raw bigrams
const QUAD = 8192; // 32 KiB hashed 4-gram bit set
const SLOT = QUAD + 32768; // 65536 × u16: the bigram's slot in THIRD
const THIRD = SLOT + 131072; // 64 bytes per slot: trigram bits, then short-keyword bits
const PAGE = 65536;
/** Positions per call at most (even): longer inputs are scanned in segments of this size. */
export const SEGMENT = 128 * 1024;

/** The tables of one KeywordIndex (see keywords.ts for what each bit means). */
export interface PrefilterTables {
  pair: Uint8Array;
  quad: Uint8Array;
  slot: Uint16Array;
  third: Uint8Array;
  /** ORed into the four bytes before the 4-gram hash, and the hash's multiplier and shift. */
  fold: number;
  mul: number;
  shift: number;
}

import { I32, VOID, api, moduleOf, op, sleb, uleb, type WasmApi, type WasmMemory } from './wasm-encode.js';

/** Locals: the three parameters, then the rest. */
const L = { base: 0, len: 1, out: 2, p: 3, v: 4, b: 5, o: 6, lim: 7, ti: 8, sh: 9, h: 10 };

function scanBody(t: PrefilterTables): number[] {
  const c = (n: number): number[] => [op.const, ...sleb(n | 0)];
  const get = (l: number): number[] => [op.get, l];
  const set = (l: number): number[] => [op.set, l];
  /** load8_u at (address on the stack) + offset, then `>> shift & 1` with the shift in local sh. */
  const bitAt = (offset: number): number[] => [op.load8, 0, ...uleb(offset), ...get(L.sh), op.shrU, ...c(1), op.and];
  return [
    ...get(L.out),
    ...set(L.o),
    ...get(L.len),
    ...c(3),
    op.sub,
    ...set(L.lim),
    ...c(0),
    ...set(L.p),
    op.block,
    VOID,
    op.loop,
    VOID,
    // while (p < len − 3)
    ...get(L.p),
    ...get(L.lim),
    op.geS,
    op.brIf,
    1,
    // v = the four bytes at p; b = its first two (little-endian)
    ...get(L.base),
    ...get(L.p),
    op.add,
    op.load,
    0,
    0,
    op.tee,
    L.v,
    ...c(0xffff),
    op.and,
    op.tee,
    L.b,
    ...c(7),
    op.and,
    ...set(L.sh),
    ...get(L.b),
    ...c(3),
    op.shrU,
    ...bitAt(PAIR),
    op.if,
    VOID,
    // ti = slot[b] << 6 | third byte >> 3; sh = third byte & 7
    ...get(L.b),
    ...c(1),
    op.shl,
    op.load16,
    1,
    ...uleb(SLOT),
    ...c(6),
    op.shl,
    ...get(L.v),
    ...c(19),
    op.shrU,
    ...c(31),
    op.and,
    op.or,
    ...set(L.ti),
    ...get(L.v),
    ...c(16),
    op.shrU,
    ...c(7),
    op.and,
    ...set(L.sh),
    ...get(L.ti),
    ...bitAt(THIRD),
    op.if,
    VOID,
    // a short-keyword trigram, or the 4-gram filter (h in sh's place for its bit)
    ...get(L.ti),
    ...bitAt(THIRD + 32),
    ...get(L.v),
    ...c(t.fold),
    op.or,
    ...c(t.mul),
    op.mul,
    ...c(t.shift),
    op.shrU,
    op.tee,
    L.h,
    ...c(7),
    op.and,
    ...set(L.sh),
    ...get(L.h),
    ...c(3),
    op.shrU,
    ...bitAt(QUAD),
    op.or,
    op.if,
    VOID,
    ...get(L.o),
    ...get(L.p),
    op.store,
    2,
    0,
    ...get(L.o),
    ...c(4),
    op.add,
    ...set(L.o),
    op.end,
    op.end,
    op.end,
    ...get(L.p),
    ...c(2),
    op.add,
    ...set(L.p),
    op.br,
    0,
    op.end,
    op.end,
    // count = (o − out) >> 2
    ...get(L.o),
    ...get(L.out),
    op.sub,
    ...c(2),
    op.shrU,
    op.end,
  ];
}

function moduleBytes(t: PrefilterTables): Uint8Array {
  // 8 locals beyond the 3 parameters
  return moduleOf({ name: 'scan', params: [I32, I32, I32], locals: 8, body: scanBody(t) });
}

const modules = new Map<string, object>();

/** One KeywordIndex's filters in WebAssembly; undefined where WebAssembly is not available. */
export class WasmPrefilter {
  private readonly mem: WasmMemory;
  private readonly run: (base: number, len: number, out: number) => number;
  private readonly base: number;
  private readonly u8: Uint8Array;
  private readonly i32: Int32Array;
  /** Where the last scan's offsets start in `list`. */
  at = 0;

  private constructor(t: PrefilterTables, w: WasmApi) {
    this.base = align(THIRD + t.third.length);
    const key = `${t.fold},${t.mul},${t.shift}`;
    let m = modules.get(key);
    if (!m) modules.set(key, (m = new w.Module(moduleBytes(t))));
    // Tables, one segment, its offsets (at most one per two bytes, four bytes each).
    this.mem = new w.Memory({ initial: Math.ceil((align(this.base + SEGMENT + 8) + 2 * SEGMENT + 16) / PAGE) });
    const inst = new w.Instance(m, { m: { mem: this.mem } });
    this.run = inst.exports.scan as (base: number, len: number, out: number) => number;
    this.u8 = new Uint8Array(this.mem.buffer);
    this.i32 = new Int32Array(this.mem.buffer);
    this.u8.set(t.pair, PAIR);
    this.u8.set(t.quad, QUAD);
    this.u8.set(new Uint8Array(t.slot.buffer, t.slot.byteOffset, t.slot.byteLength), SLOT);
    this.u8.set(t.third, THIRD);
  }

  static create(t: PrefilterTables): WasmPrefilter | undefined {
    if (!api || t.pair.length !== QUAD - PAIR || t.quad.length !== SLOT - QUAD || t.slot.length !== 65536) return undefined;
    return new WasmPrefilter(t, api);
  }

  /**
   * The offsets p = from, from + 2, … with p + 3 < end whose bytes pass the filters, as offsets
   * from `from`, in order: returns their count; they are `list[at …]` until the next call.
   * `end − from` is at most SEGMENT + 3 (the caller scans longer inputs in segments), so the
   * memory stays at its first size.
   */
  scan(buf: Buffer, from: number, end: number): number {
    const len = end - from;
    if (len < 4) return 0;
    if (len > SEGMENT + 3) throw new RangeError('prefilter segment too long');
    const out = align(this.base + len + 4);
    this.u8.set(buf.subarray(from, end), this.base);
    this.at = out >>> 2;
    return this.run(this.base, len, out);
  }

  /** The last scan's offsets: `list[at … at + count)`. */
  get list(): Int32Array {
    return this.i32;
  }
}

function align(n: number): number {
  return (n + 15) & ~15;
}
