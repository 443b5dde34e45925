/**
 * The instructions of prefilter-wasm.ts's two functions (the keyword index's loop, keywords.ts
 * `scan` → `candidates` → `at`, in WebAssembly). Table offsets are constants of the code; see
 * prefilter-wasm.ts for the memory layout and what each table holds.
 *
 *   scan(base, len, out, lim, last, kw) → count: every even p < lim whose four bytes pass the
 *     bigram, trigram and short-keyword/4-gram bits; for it the starts p − 1, p, p + 1 that its
 *     bigram's flags name (each start once: `last`, as in keywords.ts), behind the start-bigram
 *     bit; each start goes to `check`. `last` is left at RET.
 *   check (prefilter-wasm-check.ts).
 */
import { op, sleb, uleb, VOID } from './wasm-encode.js';

export const PAIR = 0; // 8 KiB bit set over raw bigrams (little-endian: byte p lowest)
export const QUAD = 8192; // 32 KiB hashed 4-gram bit set
export const SLOT = QUAD + 32768; // 65536 × u16: the bigram's slot in THIRD
export const FLAG = SLOT + 131072; // 64 KiB: P/M/N per raw bigram (byte p highest)
export const START = FLAG + 65536; // 8 KiB bit set: a keyword may start here (byte p highest)
export const LOWER = START + 8192; // 256: ASCII lower case
export const SINGLE = LOWER + 256; // 256: 1 when a one-byte keyword is this (lower-case) byte
export const BIDX = SINGLE + 256; // 65536 × u16: the lower-case bigram's bucket (1-based), 0 none
export const RET = BIDX + 131072; // 16: scan's `last`
export const THIRD = RET + 16; // 64 bytes per slot: trigram bits, then short-keyword bits

const M_FLAG = 2;
const P_FLAG = 1;
const N_FLAG = 4;

const c = (n: number): number[] => [op.const, ...sleb(n | 0)];
const get = (l: number): number[] => [op.get, l];
const set = (l: number): number[] => [op.set, l];
const CALL = 0x10;

export function scanBody(t: { fold: number; mul: number; shift: number }): number[] {
  const L = { base: 0, len: 1, out: 2, lim: 3, last: 4, kw: 5, p: 6, v: 7, b: 8, o: 9, ti: 10, sh: 11, h: 12, f: 13, c: 14 };
  /** load8_u at (address on the stack) + offset, then `>> sh & 1`. */
  const bitAt = (offset: number): number[] => [op.load8, 0, ...uleb(offset), ...get(L.sh), op.shrU, ...c(1), op.and];
  /** The start-bigram bit for the index on the stack (consumes it; uses sh). */
  const startBit = [op.tee, L.h, ...c(7), op.and, ...set(L.sh), ...get(L.h), ...c(3), op.shrU, ...bitAt(START)];
  const check = (l: number): number[] => [...get(L.base), ...get(L.len), ...get(l), ...get(L.kw), ...get(L.o), CALL, 1, ...set(L.o)];
  return [
    ...get(L.out),
    ...set(L.o),
    ...c(0),
    ...set(L.p),
    op.block,
    VOID,
    op.loop,
    VOID,
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
    // a short-keyword trigram, or the 4-gram filter
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
    // f = flag[byte p << 8 | byte p + 1]
    ...get(L.v),
    ...c(0xff),
    op.and,
    ...c(8),
    op.shl,
    ...get(L.v),
    ...c(8),
    op.shrU,
    ...c(0xff),
    op.and,
    op.or,
    op.load8,
    0,
    ...uleb(FLAG),
    ...set(L.f),
    // M: a keyword may start at p − 1 (once: p − 1 > last)
    ...get(L.f),
    ...c(M_FLAG),
    op.and,
    ...get(L.p),
    ...c(1),
    op.sub,
    op.tee,
    L.c,
    ...get(L.last),
    op.gtS,
    op.mul,
    op.if,
    VOID,
    ...get(L.base),
    ...get(L.c),
    op.add,
    op.load8,
    0,
    0,
    ...c(8),
    op.shl,
    ...get(L.v),
    ...c(0xff),
    op.and,
    op.or,
    ...startBit,
    op.if,
    VOID,
    ...check(L.c),
    op.end,
    ...get(L.c),
    ...set(L.last),
    op.end,
    // P: at p (once)
    ...get(L.f),
    ...c(P_FLAG),
    op.and,
    ...get(L.p),
    ...get(L.last),
    op.gtS,
    op.mul,
    op.if,
    VOID,
    ...check(L.p),
    ...get(L.p),
    ...set(L.last),
    op.end,
    // N: a one-byte keyword at p + 1
    ...get(L.f),
    ...c(N_FLAG),
    op.and,
    op.if,
    VOID,
    ...get(L.p),
    ...c(1),
    op.add,
    ...set(L.c),
    ...get(L.v),
    ...c(0xff00),
    op.and,
    ...get(L.v),
    ...c(16),
    op.shrU,
    ...c(0xff),
    op.and,
    op.or,
    ...startBit,
    op.if,
    VOID,
    ...check(L.c),
    op.end,
    ...get(L.c),
    ...set(L.last),
    op.end,
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
    ...c(RET),
    ...get(L.last),
    op.store,
    2,
    0,
    ...get(L.o),
    ...get(L.out),
    op.sub,
    ...c(2),
    op.shrU,
    op.end,
  ];
}
