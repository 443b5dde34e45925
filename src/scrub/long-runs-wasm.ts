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
import { I32, VOID, api, moduleOf, op, sleb, uleb, type WasmMemory } from './wasm-encode.js';

/** Inputs longer than this use the JavaScript loop (memory stays bounded). */
export const MAX_INPUT = 512 * 1024;
const TABLE = 0; // 256 bytes: 1 for a byte of the alphabet
const CLASS = 256; // 256 bytes: the caller's class bits per byte, ORed over each run
const BASE = 512;
const PAGE = 65536;

const L = { base: 0, len: 1, min: 2, out: 3, i: 4, j: 5, k: 6, e: 7, o: 8, bits: 9 };

function body(): number[] {
  const c = (n: number): number[] => [op.const, ...sleb(n | 0)];
  const get = (l: number): number[] => [op.get, l];
  const set = (l: number): number[] => [op.set, l];
  /** 1 when the input byte at (local l) is in the alphabet. */
  const inAlphabet = (l: number): number[] => [...get(L.base), ...get(l), op.add, op.load8, 0, 0, op.load8, 0, TABLE];
  /** bits |= CLASS[the input byte at (local l)] */
  const addBits = (l: number): number[] => [...get(L.base), ...get(l), op.add, op.load8, 0, 0, op.load8, 0, ...uleb(CLASS), ...get(L.bits), op.or, ...set(L.bits)];
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
    ...addBits(L.j),
    // k = j − 1; back while k ≥ i and in the alphabet
    ...get(L.j),
    ...c(1),
    op.sub,
    ...set(L.k),
    op.block,
    VOID,
    op.loop,
    VOID,
    ...get(L.k),
    ...get(L.i),
    op.ltS,
    op.brIf,
    1,
    ...inAlphabet(L.k),
    op.eqz,
    op.brIf,
    1,
    ...addBits(L.k),
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
    op.block,
    VOID,
    op.loop,
    VOID,
    ...get(L.e),
    ...get(L.len),
    op.geS,
    op.brIf,
    1,
    ...inAlphabet(L.e),
    op.eqz,
    op.brIf,
    1,
    ...addBits(L.e),
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

  constructor(table: Uint8Array, classes: Uint8Array) {
    const w = api;
    if (!w) throw new Error('no WebAssembly');
    const m = new w.Module(moduleOf('runs', [I32, I32, I32, I32], [6, I32], body()));
    // The input, then its runs: at most one per (min + 1) bytes, 12 bytes each (min ≥ 8).
    const mem: WasmMemory = new w.Memory({ initial: Math.ceil((BASE + 3 * MAX_INPUT + 4096) / PAGE) });
    this.run = new w.Instance(m, { m: { mem } }).exports.runs as (base: number, len: number, min: number, out: number) => number;
    this.u8 = new Uint8Array(mem.buffer);
    this.i32 = new Int32Array(mem.buffer);
    this.u8.set(table.subarray(0, 256), TABLE);
    this.u8.set(classes.subarray(0, 256), CLASS);
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

/** The process's instance for `table`'s alphabet and `classes`' bits, or null where WebAssembly is
 * missing. Both are fixed (decoded.ts's B64, patterns.ts's CHECK_CLASS): the first caller's are
 * the ones used. */
export function longRuns(table: Uint8Array, classes: Uint8Array): LongRuns | null {
  if (shared === undefined) shared = api ? new LongRuns(table, classes) : null;
  return shared;
}
