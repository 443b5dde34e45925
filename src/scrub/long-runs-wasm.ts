/**
 * The maximal runs of ≥ `min` base64 bytes (decoded.ts, `forEachLongRun`: the wrapped-base64
 * finder and the aws-secret-access-key run scan ride on them) found by a WebAssembly function:
 * the same skip loop (look at byte i + min − 1 first, then back, then forward), without a bounds
 * check and a tagged load per byte. On pretty-printed JSON the JavaScript loop was ~16% of the
 * scrubber's time (docs/benchmarks.md, "Scrubber throughput → Fourth round").
 *
 * One instance per process (no per-scrubber table: the alphabet is fixed), its memory holding the
 * alphabet table, one input of at most MAX_INPUT bytes and the runs found in it. Longer inputs
 * stay on the JavaScript loop (decoded.ts decides).
 */
import { ESC_FIRST, ESC_NEXT, escapesBody } from './escapes-wasm.js';
import { I32, VOID, api, moduleOf, op, sleb, uleb, type WasmApi, type WasmMemory, loopUntil } from './wasm-encode.js';

/** Inputs longer than this use the JavaScript loops (memory stays bounded). */
export const MAX_INPUT = 512 * 1024;
const TABLE = 0; // 256 bytes: IN | the caller's class bits (ORed over each run) for a byte of the alphabet, else 0
const BASE = 1024;
const PAGE = 65536;

/** The fixed tables (decoded.ts, patterns.ts). */
export interface RunTables {
  alphabet: Uint8Array;
  classes: Uint8Array;
  /** The three bytes that may start an escape, in this order, and ESC_NEXT as above. */
  escBytes: readonly [number, number, number];
  escNext: Uint8Array;
}

const L = { base: 0, len: 1, min: 2, out: 3, i: 4, j: 5, k: 6, e: 7, o: 8, bits: 9, t: 10 };
/** TABLE's bit for a byte of the alphabet; its low bits are the byte's class bits. */
const IN = 0x80;

function body(): number[] {
  const c = (n: number): number[] => [op.const, ...sleb(n | 0)];
  const get = (l: number): number[] => [op.get, l];
  const set = (l: number): number[] => [op.set, l];
  /** t = TABLE[the input byte at (local l)]; leaves t & IN (non-zero: in the alphabet). One load
   * of the byte and one of the table serve the test and the class bits (was two of each: the
   * long-run finder alone on JSON +18%). */
  const inAlphabet = (l: number): number[] => [...get(L.base), ...get(l), op.add, op.load8, 0, 0, op.load8, 0, ...uleb(TABLE), op.tee, L.t, ...c(IN), op.and];
  /** bits |= t (IN is masked off when the run is stored) */
  const addBits = [...get(L.bits), ...get(L.t), op.or, ...set(L.bits)];
  return [
    ...get(L.out),
    ...set(L.o),
    ...c(0),
    ...set(L.i),
    op.block,
    VOID, // depth 1 from the loop: exit
    op.loop,
    VOID, // the outer loop
    // while (i + min <= len)
    ...get(L.i),
    ...get(L.min),
    op.add,
    ...get(L.len),
    op.gtS,
    op.brIf,
    1,
    // j = i + min − 1; a byte outside the alphabet there: no run of min covers [i, j]
    ...get(L.i),
    ...get(L.min),
    op.add,
    ...c(1),
    op.sub,
    ...set(L.j),
    ...inAlphabet(L.j),
    op.eqz,
    op.if,
    VOID,
    ...get(L.j),
    ...c(1),
    op.add,
    ...set(L.i),
    op.br,
    1,
    op.end,
    ...c(0),
    ...set(L.bits),
    ...addBits,
    // k = j − 1; back while k ≥ i and in the alphabet
    ...get(L.j),
    ...c(1),
    op.sub,
    ...set(L.k),
    ...loopUntil([...get(L.k), ...get(L.i), op.ltS]),
    ...inAlphabet(L.k),
    op.eqz,
    op.brIf,
    1,
    ...addBits,
    ...get(L.k),
    ...c(1),
    op.sub,
    ...set(L.k),
    op.br,
    0,
    op.end,
    op.end,
    // a gap in [i, j): start after it
    ...get(L.k),
    ...get(L.i),
    op.geS,
    op.if,
    VOID,
    ...get(L.k),
    ...c(1),
    op.add,
    ...set(L.i),
    op.br,
    1,
    op.end,
    // e = j + 1; forward while e < len and in the alphabet
    ...get(L.j),
    ...c(1),
    op.add,
    ...set(L.e),
    ...loopUntil([...get(L.e), ...get(L.len), op.geS]),
    ...inAlphabet(L.e),
    op.eqz,
    op.brIf,
    1,
    ...addBits,
    ...get(L.e),
    ...c(1),
    op.add,
    ...set(L.e),
    op.br,
    0,
    op.end,
    op.end,
    // the run [i, e)
    ...get(L.o),
    ...get(L.i),
    op.store,
    2,
    0,
    ...get(L.o),
    ...get(L.e),
    op.store,
    2,
    4,
    ...get(L.o),
    ...get(L.bits),
    ...c(IN - 1),
    op.and,
    op.store,
    2,
    8,
    ...get(L.o),
    ...c(12),
    op.add,
    ...set(L.o),
    ...get(L.e),
    ...c(1),
    op.add,
    ...set(L.i),
    op.br,
    0,
    op.end,
    op.end,
    // the number of runs
    ...get(L.o),
    ...get(L.out),
    op.sub,
    ...c(12),
    op.divU,
    op.end,
  ];
}

class LongRuns {
  private readonly u8: Uint8Array;
  private readonly i32: Int32Array;
  private readonly run: (base: number, len: number, min: number, out: number) => number;
  private readonly esc: (base: number, len: number, out: number) => number;

  constructor(t: RunTables, w: WasmApi) {
    const m = new w.Module(
      moduleOf(
        { name: 'runs', params: [I32, I32, I32, I32], locals: 7, body: body() },
        { name: 'escapes', params: [I32, I32, I32], locals: 5, vectors: 1, body: escapesBody(t.escBytes) },
      ),
    );
    // The input (and 32 bytes past it: escapes reads 32 at a time), then what was found: runs, at most one per (min + 1)
    // bytes, 12 bytes each (min ≥ 8); escapes, at most one per 2 bytes, 4 bytes each.
    const mem: WasmMemory = new w.Memory({ initial: Math.ceil((BASE + 3 * MAX_INPUT + 4096) / PAGE) });
    const x = new w.Instance(m, { m: { mem } }).exports;
    this.run = x.runs as (base: number, len: number, min: number, out: number) => number;
    this.esc = x.escapes as (base: number, len: number, out: number) => number;
    this.u8 = new Uint8Array(mem.buffer);
    this.i32 = new Int32Array(mem.buffer);
    for (let b = 0; b < 256; b++) {
      const cls = t.classes[b] ?? 0;
      if (cls >= IN) throw new RangeError('long runs: class bits above 0x7f');
      this.u8[TABLE + b] = t.alphabet[b] ? IN | cls : 0;
    }
    t.escBytes.forEach((b, k) => (this.u8[ESC_FIRST + b] = 1 << k));
    this.u8.set(t.escNext.subarray(0, 256), ESC_NEXT);
  }

  /** The offsets p in [from, buf.length) where an escape may start (escNext, see RunTables), in
   * order: returns their count; they are `list[at …]` as offsets from `from`, until the next call. */
  escapes(buf: Buffer, from: number): number {
    const len = buf.length - from;
    if (len > MAX_INPUT) throw new RangeError('escapes: input too long');
    this.u8.set(buf.subarray(from), BASE);
    this.u8[BASE + len] = 0; // the byte after the last one: none
    const out = (BASE + len + 16 + 15) & ~15;
    this.at = out >>> 2;
    return this.esc(BASE, len, out);
  }

  /** Where the last `escapes` call's offsets start in `list`. */
  at = 0;

  get list(): Int32Array {
    return this.i32;
  }

  /** Calls found(start, end, bits) for every maximal run of ≥ min alphabet bytes in [from, end)
   * of buf, a run reaching back past `from` starting at `from`, in order; `bits` is the OR of the
   * class table over the run's bytes. */
  each(buf: Buffer, from: number, min: number, found: (start: number, end: number, bits: number) => void): void {
    const len = buf.length - from;
    // At most one run per min + 1 bytes: with min ≥ 8 the runs fit behind the input.
    if (len > MAX_INPUT || min < 8) throw new RangeError('long runs: input too long or min too small');
    this.u8.set(buf.subarray(from), BASE);
    const out = (BASE + len + 15) & ~15;
    const count = this.run(BASE, len, min, out);
    const list = this.i32;
    const at = out >>> 2;
    for (let r = 0; r < 3 * count; r += 3) found(from + (list[at + r] as number), from + (list[at + r + 1] as number), list[at + r + 2] as number);
  }
}

let shared: LongRuns | null | undefined;

/** The process's instance for the tables, or null where WebAssembly (or its SIMD) is missing. The
 * tables are fixed (decoded.ts, patterns.ts): the first caller's are the ones used. */
export function longRuns(t: RunTables): LongRuns | null {
  if (shared === undefined) {
    try {
      shared = api ? new LongRuns(t, api) : null;
    } catch {
      shared = null; // a runtime without SIMD rejects the module: the JavaScript loops stay
    }
  }
  return shared;
}
