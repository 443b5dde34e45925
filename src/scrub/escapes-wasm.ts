/**
 * The escape-start search of long-runs-wasm.ts as WebAssembly instructions (its instance holds
 * the tables at ESC_FIRST and ESC_NEXT and runs this as `escapes`). See decoded.ts, escapedRuns.
 */
import { SIMD, VOID, op, sleb, uleb, loopUntil } from './wasm-encode.js';

/** Where the instance keeps the tables (below long-runs-wasm.ts's input area). */
export const ESC_FIRST = 512; // 256 bytes: a bit per escape-starting byte (decoded.ts)
export const ESC_NEXT = 768; // 256 bytes: the bits of the starting bytes this byte may follow in an escape

/**
 * escapes(base, len, out): every offset p < len with escNext[input[p + 1]] & (the bit of input[p])
 * set, in order (input[len] is 0). 32 bytes per step (two 16-byte loads, each compared once per
 * byte; the function alone +50% over 16 bytes per step with three loads, docs/benchmarks.md
 * "Seventh round"): three SIMD compares find the escape-starting bytes (on random bytes one in 85,
 * on text mostly none), a bit mask walks them. Reads up to 31 bytes past len (not used).
 */
export function escapesBody(escBytes: readonly [number, number, number]): number[] {
  const E = { base: 0, len: 1, out: 2, i: 3, o: 4, m: 5, p: 6, v: 7, x: 8 };
  const c = (n: number): number[] => [op.const, ...sleb(n | 0)];
  const get = (l: number): number[] => [op.get, l];
  const set = (l: number): number[] => [op.set, l];
  /** The lanes of the 16 bytes at i + offset holding one of the three bytes, as a bit mask. */
  const lanes = (offset: number): number[] => [
    ...get(E.base),
    ...get(E.i),
    op.add,
    SIMD,
    0x00,
    0,
    ...uleb(offset),
    op.tee,
    E.x,
    ...eqByte(escBytes[0]),
    ...get(E.x),
    ...eqByte(escBytes[1]),
    SIMD,
    0x50,
    ...get(E.x),
    ...eqByte(escBytes[2]),
    SIMD,
    0x50,
    SIMD,
    0x64,
  ];
  const eqByte = (b: number): number[] => [SIMD, 0x0c, ...new Array<number>(16).fill(b), SIMD, 0x23];
  return [
    ...get(E.out),
    ...set(E.o),
    ...c(0),
    ...set(E.i),
    ...loopUntil([...get(E.i), ...get(E.len), op.geS]),
    // m = the lanes holding one of the three bytes, 32 per step
    ...lanes(0),
    ...lanes(16),
    ...c(16),
    op.shl,
    op.or,
    ...set(E.m),
    // past the input's end: lanes ≥ len − i are not the input's
    ...get(E.len),
    ...get(E.i),
    op.sub,
    ...c(32),
    op.ltS,
    op.if,
    VOID,
    ...get(E.m),
    ...c(1),
    ...get(E.len),
    ...get(E.i),
    op.sub,
    op.shl,
    ...c(1),
    op.sub,
    op.and,
    ...set(E.m),
    op.end,
    ...loopUntil([...get(E.m), op.eqz]),
    // p = i + the lowest set lane; v = input[p] | input[p + 1] << 8
    ...get(E.i),
    ...get(E.m),
    op.ctz,
    op.add,
    op.tee,
    E.p,
    ...get(E.base),
    op.add,
    op.load16,
    0,
    0,
    op.tee,
    E.v,
    ...c(0xff),
    op.and,
    op.load8,
    0,
    ...uleb(ESC_FIRST),
    ...get(E.v),
    ...c(8),
    op.shrU,
    op.load8,
    0,
    ...uleb(ESC_NEXT),
    op.and,
    op.if,
    VOID,
    ...get(E.o),
    ...get(E.p),
    op.store,
    2,
    0,
    ...get(E.o),
    ...c(4),
    op.add,
    ...set(E.o),
    op.end,
    ...get(E.m),
    ...get(E.m),
    ...c(1),
    op.sub,
    op.and,
    ...set(E.m),
    op.br,
    0,
    op.end,
    op.end,
    ...get(E.i),
    ...c(32),
    op.add,
    ...set(E.i),
    op.br,
    0,
    op.end,
    op.end,
    ...get(E.o),
    ...get(E.out),
    op.sub,
    ...c(2),
    op.shrU,
    op.end,
  ];
}
