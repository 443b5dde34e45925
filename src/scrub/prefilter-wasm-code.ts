/**
 * The instructions of prefilter-wasm.ts's two functions (the keyword index's loop, keywords.ts
 * `scan` → `pairHit` → `candidates` → `at`, in WebAssembly). Table offsets are constants of the
 * code; see prefilter-wasm.ts for the memory layout and keywords.ts for what each table holds.
 *
 *   scan(base, len, out, lim, last, kw) → count: for every even p < lim, the KIND byte of the
 *     bigram (p, p + 1); past a non-zero one, the odd bigram (p − 1, p) for a two-byte keyword at
 *     p − 1, and the trigram's kinds (which start it stands for) with the 4-gram bit for the long
 *     keywords: the starts p − 1, p, p + 1 they name, each once (`last`, as in keywords.ts),
 *     behind the start-bigram bit, are listed in order; then each listed start goes to `check`,
 *     which keeps the ones where a keyword matches (compacting the list). `last` is left at RET.
 *   check (prefilter-wasm-check.ts).
 *
 * The common path is one load and two KIND loads per four bytes (two positions), OR-ed over eight
 * bytes into one branch. The exact checks run after the loop, not from it: a call inside the loop
 * cost the loop its registers (the scan alone +12–16%).
 */
import { op, sleb, uleb, VOID, loopUntil } from './wasm-encode.js';

export const KIND = 0; // 64 KiB per raw bigram (little-endian: byte p lowest): the K_ bits below
export const QUAD = 65536; // 32 KiB hashed 4-gram bit set
export const SLOT = QUAD + 32768; // 65536 × u16: the bigram's slot in THIRD
export const START = SLOT + 131072; // 8 KiB bit set: a keyword may start here (byte p highest)
export const ODD = START + 8192; // 8 KiB bit set: two-byte keywords at the odd bigram (p − 1, p), little-endian
export const LOWER = ODD + 8192; // 256: ASCII lower case
export const SINGLE = LOWER + 256; // 256: 1 when a one-byte keyword is this (lower-case) byte
export const BIDX = SINGLE + 256; // 65536 × u16: the lower-case bigram's bucket (1-based), 0 none
export const RET = BIDX + 131072; // 16: scan's `last`
export const THIRD = RET + 16; // 128 bytes per slot: a nibble of trigram kinds per third byte (keywords.ts `kinds`)

/** KIND bits: the bigram begins a set trigram (it has a slot in THIRD). */
export const K_TRI = 1;
/** Byte p is the second byte of a two-byte keyword: test ODD at p − 1. */
export const K_ODD = 2;
/** keywords.ts's M and N flags: a keyword may start at p − 1; a one-byte one at p + 1. */
export const K_M = 4;
export const K_N = 8;

/** The trigram kinds (keywords.ts): a short or long keyword at p; a short or long one at p − 1
 * (short: or a one-byte keyword at p + 1). A long kind passes only with its 4-gram bit. */
const SHORT_P = 1;
const LONG_P = 2;
const SHORT_M = 4;

/** Positions per step of the main loop (two per four-byte load): 4 beat 2 and 8 (scan alone, JSON
 * and random bytes, +8–15% over 2). */
const STEP = 4;

const c = (n: number): number[] => [op.const, ...sleb(n | 0)];
const get = (l: number): number[] => [op.get, l];
const set = (l: number): number[] => [op.set, l];
const CALL = 0x10;

/** Locals of `scan`: its six parameters, then the loop's (`fs`: the STEP KIND bytes). */
const L = { base: 0, len: 1, out: 2, lim: 3, last: 4, kw: 5, p: 6, v: 7, f: 8, o: 9, n: 10, sh: 11, h: 12, c: 13, q: 14, x: 15, w: 16, fs: 17 };
export const SCAN_LOCALS = L.fs + STEP - 6;

export function scanBody(t: { fold: number; mul: number; shift: number }): number[] {
  /** The bit of the index on the stack in the bit set at `offset` (consumes it; uses h, sh). */
  const bit = (offset: number): number[] => [
    op.tee,
    L.h,
    ...c(7),
    op.and,
    ...set(L.sh),
    ...get(L.h),
    ...c(3),
    op.shrU,
    op.load8,
    0,
    ...uleb(offset),
    ...get(L.sh),
    op.shrU,
    ...c(1),
    op.and,
  ];
  /** The start in local l goes to the list at o. */
  const emit = (l: number): number[] => [...get(L.o), ...get(l), op.store, 2, 0, ...get(L.o), ...c(4), op.add, ...set(L.o)];
  /** The address of byte c of the input. */
  const addressOfC = [...get(L.base), ...get(L.c), op.add];
  /** c = q − 1, and whether it is past `last` (each start once). */
  const prevOnce = [...get(L.q), ...c(1), op.sub, op.tee, L.c, ...get(L.last), op.gtS];
  /** Lists c if the start-bigram bit of the index on the stack is set; last = c either way. */
  const startEmit = [...bit(START), op.if, VOID, ...emit(L.c), op.end, ...get(L.c), ...set(L.last)];
  /** Past a non-zero KIND byte (local f) at position q, its four bytes in w. */
  const slow = [
    // K_ODD: a two-byte keyword at q − 1 (once: q − 1 > last)
    ...get(L.f),
    ...c(K_ODD),
    op.and,
    op.if,
    VOID,
    ...prevOnce,
    op.if,
    VOID,
    ...addressOfC,
    op.load16,
    0,
    0,
    ...bit(ODD),
    op.if,
    VOID,
    ...emit(L.c),
    ...get(L.c),
    ...set(L.last),
    op.end,
    op.end,
    op.end,
    // K_TRI: n = the trigram's kinds (the nibble of THIRD at slot[b] << 7 | third byte >> 1)
    ...get(L.f),
    ...c(K_TRI),
    op.and,
    op.if,
    VOID,
    ...get(L.w),
    ...c(0xffff),
    op.and,
    ...c(1),
    op.shl,
    op.load16,
    1,
    ...uleb(SLOT),
    ...c(7),
    op.shl,
    ...get(L.w),
    ...c(17),
    op.shrU,
    ...c(127),
    op.and,
    op.or,
    op.load8,
    0,
    ...uleb(THIRD),
    ...get(L.w),
    ...c(14),
    op.shrU,
    ...c(4),
    op.and,
    op.shrU,
    ...c(15),
    op.and,
    op.tee,
    L.n,
    op.if,
    VOID,
    // x = the kinds that pass: the short ones, the long ones when the 4-gram bit is set (the
    // mask 1 | bit << 1, times 5 for the same two bits at p − 1)
    ...get(L.w),
    ...c(t.fold),
    op.or,
    ...c(t.mul),
    op.mul,
    ...c(t.shift),
    op.shrU,
    ...bit(QUAD),
    ...c(LONG_P),
    op.mul,
    ...c(SHORT_P),
    op.or,
    ...c(SHORT_M / SHORT_P + 1),
    op.mul,
    ...get(L.n),
    op.and,
    op.tee,
    L.x,
    op.if,
    VOID,
    // M: at q − 1 (once), behind the start-bigram bit (byte q − 1 << 8 | byte q)
    ...get(L.f),
    ...c(K_M),
    op.and,
    ...get(L.x),
    ...c(SHORT_M * 3),
    op.and,
    op.mul,
    op.if,
    VOID,
    ...prevOnce,
    op.if,
    VOID,
    ...addressOfC,
    op.load8,
    0,
    0,
    ...c(8),
    op.shl,
    ...get(L.w),
    ...c(0xff),
    op.and,
    op.or,
    ...startEmit,
    op.end,
    op.end,
    // P: at q (once)
    ...get(L.x),
    ...c(SHORT_P * 3),
    op.and,
    ...get(L.q),
    ...get(L.last),
    op.gtS,
    op.mul,
    op.if,
    VOID,
    ...emit(L.q),
    ...get(L.q),
    ...set(L.last),
    op.end,
    // N: a one-byte keyword at q + 1, behind the start-bigram bit (byte q + 1 << 8 | byte q + 2)
    ...get(L.f),
    ...c(K_N),
    op.and,
    ...get(L.x),
    ...c(SHORT_M * 3),
    op.and,
    op.mul,
    op.if,
    VOID,
    ...get(L.q),
    ...c(1),
    op.add,
    ...set(L.c),
    ...get(L.w),
    ...c(0xff00),
    op.and,
    ...get(L.w),
    ...c(16),
    op.shrU,
    ...c(0xff),
    op.and,
    op.or,
    ...startEmit,
    op.end,
    op.end,
    op.end,
    op.end,
  ];
  /** q = p + 2k, w = its four bytes (left on the stack). Written as `q = …; base + q`: the form
   * `(p + 2k, tee q) + base` made V8 compile the whole loop ~10% slower (scan alone, JSON). */
  const at = (k: number): number[] => [...get(L.p), ...c(2 * k), op.add, ...set(L.q), ...get(L.base), ...get(L.q), op.add, op.load, 0, 0, op.tee, L.w];
  /** A loop over n positions per step (n even, all < lim): one four-byte read per two KIND bytes,
   * one branch for all n (the common case: all 0). */
  const steps = (n: number): number[] => [
    ...loopUntil([...get(L.p), ...c(2 * n - 2), op.add, ...get(L.lim), op.geS]),
    ...Array.from({ length: n / 2 }, (_, j) => [
      ...get(L.base),
      ...get(L.p),
      op.add,
      op.load,
      0,
      ...uleb(4 * j),
      op.tee,
      L.v,
      ...c(0xffff),
      op.and,
      op.load8,
      0,
      ...uleb(KIND),
      op.tee,
      L.fs + 2 * j,
      ...(j > 0 ? [op.or] : []),
      ...get(L.v),
      ...c(16),
      op.shrU,
      op.load8,
      0,
      ...uleb(KIND),
      op.tee,
      L.fs + 2 * j + 1,
      op.or,
    ]).flat(),
    op.if,
    VOID,
    ...Array.from({ length: n }, (_, k) => [...get(L.fs + k), op.if, VOID, ...get(L.fs + k), ...set(L.f), ...at(k), op.drop, ...slow, op.end]).flat(),
    op.end,
    ...get(L.p),
    ...c(2 * n),
    op.add,
    ...set(L.p),
    op.br,
    0,
    op.end,
    op.end,
  ];
  return [
    ...get(L.out),
    ...set(L.o),
    ...c(0),
    ...set(L.p),
    ...steps(STEP),
    ...steps(2),
    // the last position
    ...get(L.p),
    ...get(L.lim),
    op.ltS,
    op.if,
    VOID,
    ...at(0),
    ...c(0xffff),
    op.and,
    op.load8,
    0,
    ...uleb(KIND),
    op.tee,
    L.f,
    op.if,
    VOID,
    ...slow,
    op.end,
    op.end,
    // The listed starts out … o, checked exactly and compacted in place (read at n, kept at q).
    ...get(L.out),
    op.tee,
    L.n,
    ...set(L.q),
    ...loopUntil([...get(L.n), ...get(L.o), op.geU]),
    ...get(L.base),
    ...get(L.len),
    ...get(L.n),
    op.load,
    2,
    0,
    ...get(L.kw),
    ...get(L.q),
    CALL,
    1,
    ...set(L.q),
    ...get(L.n),
    ...c(4),
    op.add,
    ...set(L.n),
    op.br,
    0,
    op.end,
    op.end,
    ...c(RET),
    ...get(L.last),
    op.store,
    2,
    0,
    ...get(L.q),
    ...get(L.out),
    op.sub,
    ...c(2),
    op.shrU,
    op.end,
  ];
}
