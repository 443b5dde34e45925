/**
 * Test helper: run the scrubber with every WebAssembly loop off (the JavaScript reference loops),
 * and count how often each WebAssembly loop ran, so a differential test can show it compared
 * the two paths and not the JavaScript one twice; and the seeded generator, naive search and
 * per-loop scan the keyword-index differential tests share.
 */
import { KeywordIndex } from '../../src/scrub/keywords.js';
import { WasmPrefilter } from '../../src/scrub/prefilter-wasm.js';
import { longRuns } from '../../src/scrub/long-runs-wasm.js';
import { B64, forEachLongRun, setWasmRuns } from '../../src/scrub/decoded.js';
import { CHECK_CLASS } from '../../src/scrub/patterns.js';

type Scan = KeywordIndex<unknown>['scan'];

/** f() with the keyword index, the long-run and the escape loops on JavaScript only. */
export function jsOnly<T>(f: () => T): T {
  const proto = KeywordIndex.prototype as unknown as { scan: Scan };
  const orig = proto.scan;
  proto.scan = function (this: KeywordIndex<unknown>, ...a: Parameters<Scan>): void {
    this.useWasm = false;
    try {
      orig.apply(this, a);
    } finally {
      this.useWasm = true;
    }
  };
  setWasmRuns(false);
  try {
    return f();
  } finally {
    proto.scan = orig;
    setWasmRuns(true);
  }
}

export const calls = { prefilter: 0, runs: 0, escapes: 0 };

/** Counts calls of the WebAssembly loops from now on (the process's instances). */
export function countWasm(): void {
  const p = WasmPrefilter.prototype as unknown as { scan: (...a: unknown[]) => number };
  const scan = p.scan;
  p.scan = function (this: unknown, ...a: unknown[]): number {
    calls.prefilter++;
    return scan.apply(this, a);
  };
  // The long-run instance is the process's one, made by its first caller with that caller's
  // tables: decoded.ts makes it here (an input of ≥ 1 KiB), so the tables below are ignored.
  forEachLongRun(Buffer.alloc(2048, 0x41), 0, 40, () => undefined);
  const lr = longRuns({ alphabet: B64, classes: CHECK_CLASS, escBytes: [0x25, 0x26, 0x5c], escNext: new Uint8Array(256) });
  if (!lr) return;
  const proto = Object.getPrototypeOf(lr) as { each: (...a: unknown[]) => void; escapes: (...a: unknown[]) => number };
  const each = proto.each;
  const escapes = proto.escapes;
  proto.each = function (this: unknown, ...a: unknown[]): void {
    calls.runs++;
    each.apply(this, a);
  };
  proto.escapes = function (this: unknown, ...a: unknown[]): number {
    calls.escapes++;
    return escapes.apply(this, a);
  };
}

/** A seeded generator (the same sequence for the same seed: a failure can be replayed). */
export function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

export const fold = (b: number): number => (b >= 0x41 && b <= 0x5a ? b | 0x20 : b);

/** The keyword bytes exactly as KeywordIndex derives them (UTF-8, ASCII case folded). */
export function kwBytes(k: string): Buffer {
  const b = Buffer.from(k, 'utf8');
  for (let i = 0; i < b.length; i++) b[i] = fold(b[i] ?? 0);
  return b;
}

/** Every keyword (kwBytes) at every start from `from`, byte by byte: `position:keyword`, sorted. */
export function naive(buf: Buffer, from: number, kws: readonly Buffer[]): string[] {
  const out: string[] = [];
  for (let i = from; i < buf.length; i++) {
    const c = fold(buf[i] ?? 0);
    for (const k of kws) {
      if (k[0] !== c || i + k.length > buf.length) continue;
      let j = 1;
      while (j < k.length && fold(buf[i + j] ?? 0) === k[j]) j++;
      if (j === k.length) out.push(`${i}:${k.toString('latin1')}`);
    }
  }
  return out.sort();
}

/** The keyword index's hits on one loop (WebAssembly or JavaScript), in the order reported. */
export function scan(ki: KeywordIndex<string>, buf: Buffer, from: number, wasm: boolean): string[] {
  const got: string[] = [];
  ki.useWasm = wasm;
  try {
    ki.scan(buf, from, (pos, e) => got.push(`${pos}:${e.bytes.toString('latin1')}`));
  } finally {
    ki.useWasm = true;
  }
  return got;
}
