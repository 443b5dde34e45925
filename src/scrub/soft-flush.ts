/** Where the engine's idle flush (engine.ts, flushSoft) may cut: see chainStart and LineNeedle. */
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

/**
 * A known secret's form that holds a line feed (a multi-line secret: a service-account JSON
 * file, a config block). The idle flush cuts right after a line feed; when the bytes before the
 * cut are the form's first lines, the rest of the form may still be on its way, so the cut goes
 * back to where they begin (they were sent out unmatched, then the rest).
 */
export class LineNeedle {
  /** The form, ASCII lower-cased when caseless; the lengths of its prefixes that end in a line feed. */
  private readonly bytes: Buffer;
  private readonly heads: number[] = [];

  constructor(
    bytes: Buffer,
    private readonly caseless: boolean,
  ) {
    this.bytes = caseless ? Buffer.from(bytes.map(fold)) : bytes;
    bytes.forEach((b, i) => {
      if (b === 0x0a) this.heads.push(i + 1);
    });
  }

  /** Where buf[…, cut) ends with a head of this form starting at ≥ from, else cut. */
  holdFrom(buf: Buffer, cut: number, from: number): number {
    for (const n of this.heads) {
      const s = cut - n;
      if (s < from) break;
      let j = 0;
      while (j < n && (this.caseless ? fold(buf[s + j] ?? 0) : buf[s + j]) === this.bytes[j]) j++;
      if (j === n) return s;
    }
    return cut;
  }
}

function fold(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}
