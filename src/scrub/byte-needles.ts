/**
 * Known-secret forms with non-ASCII bytes (the keyword index folds ASCII case only and holds
 * ASCII keywords): found by `Buffer.indexOf`. A caseless form (the raw value, docs/scrubbing.md:
 * "matched ignoring ASCII case") cannot be one `indexOf` of its bytes: an upstream that
 * upper-cases `fakeé…` sends `FAKEé…`, which an exact search missed. So it is anchored on its
 * longest part without ASCII letters (never empty: a non-ASCII byte is not a letter), which no
 * ASCII case change alters, and the whole form is compared ignoring ASCII case around each hit.
 */
export class ByteNeedle<T> {
  /** The form's bytes, ASCII lower-cased when caseless. */
  private readonly bytes: Buffer;
  /** The caseless form's letter-free part, and its offset in the form. */
  private readonly anchor: Buffer;
  private readonly at: number;

  constructor(
    bytes: Buffer,
    private readonly caseless: boolean,
    readonly info: T,
  ) {
    this.bytes = caseless ? Buffer.from(bytes.map(fold)) : bytes;
    let best = [0, 0];
    for (let i = 0; i < bytes.length;) {
      let e = i;
      while (e < bytes.length && !isLetter(bytes[e] ?? 0)) e++;
      if (e - i > (best[1] ?? 0) - (best[0] ?? 0)) best = [i, e];
      i = e + 1;
    }
    this.at = best[0] ?? 0;
    this.anchor = bytes.subarray(this.at, best[1]);
  }

  /** Calls found(start, end) for each occurrence starting at ≥ from. */
  find(buf: Buffer, from: number, found: (start: number, end: number) => void): void {
    const b = this.bytes;
    if (!this.caseless || this.anchor.length === b.length) {
      // Every start (overlaps are merged into one redaction): resuming a length later skipped
      // the occurrences inside a periodic secret and let one period out.
      for (let i = buf.indexOf(b, from); i >= 0; i = buf.indexOf(b, i + 1)) found(i, i + b.length);
      return;
    }
    for (let i = buf.indexOf(this.anchor, from + this.at); i >= 0; i = buf.indexOf(this.anchor, i + 1)) {
      const s = i - this.at;
      if (s + b.length > buf.length) return;
      let j = 0;
      while (j < b.length && fold(buf[s + j] ?? 0) === b[j]) j++;
      if (j === b.length) found(s, s + b.length);
    }
  }
}

function isLetter(c: number): boolean {
  return (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
}

function fold(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}
