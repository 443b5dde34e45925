/** Where the engine's idle flush (engine.ts, flushSoft) may cut: see chainStart. */
import { B64, MIN_WRAPPED_LINE } from './decoded.js';

/**
 * Where a soft flush may cut at the line feed `nl`: after it, unless the line before it ends in a
 * run of ≥ MIN_WRAPPED_LINE base64 bytes. Such a line may be part of wrapped base64 that goes on
 * in the next line (decoded.ts joins those lines), so the cut goes back to the start of the chain
 * it belongs to: a pause between two lines of a wrapped secret sent its halves out separately,
 * neither of which matched.
 */
export function chainStart(buf: Buffer, nl: number, from: number): number {
  let cut = nl + 1;
  for (let e = nl; ;) {
    const end = e > from && buf[e - 1] === 0x0d ? e - 1 : e;
    let s = end;
    while (s > from && B64[buf[s - 1] ?? 0] === 1) s--;
    if (end - s < MIN_WRAPPED_LINE) return cut;
    cut = s;
    // The run fills its line: the line before may be the chain's previous part.
    if (s <= from || buf[s - 1] !== 0x0a) return cut;
    e = s - 1;
  }
}
