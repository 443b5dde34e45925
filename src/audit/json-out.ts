/**
 * A record body written as UTF-8 bytes, piece by piece, without building it as a string first:
 * the file log's one-pass body (record.ts scrubbedChainBodyInto) writes each key and value here,
 * and the writer (writer.ts) points it at the free room of the hand-over ring (ring.ts), so a
 * record that fits there is written into the ring where it is published, with no string of the
 * body, no flattening of the concatenation and no UTF-8 encoding pass of it (docs/benchmarks.md,
 * "Thirteenth pass → auditfast2").
 *
 * Every piece gives the bytes its JSON text has in UTF-8: `quoted(s)` is JSON.stringify(s)'s
 * text, `number(n)` String(n)'s, `text(s)` s's. When a piece would go past the room it was
 * given, what is written so far moves to a buffer of its own (`spilled`), and writing goes on
 * there: the bytes are the same wherever they end up.
 */

const QUOTE = 0x22;

export class JsonOut {
  /** Where the bytes go: the ring's data area (`into`), or this writer's own buffer. */
  buf: Buffer;
  /** Where the body starts in `buf`. */
  start = 0;
  /** Where the next byte goes. */
  at = 0;
  /** The end of the room in `buf`. */
  end: number;
  /** The body left the room `into` gave it and is in the own buffer now. */
  spilled = false;
  private own: Buffer;

  constructor(size = 1024) {
    this.own = Buffer.allocUnsafeSlow(size);
    this.buf = this.own;
    this.end = size;
  }

  /** Starts a body in the writer's own buffer. */
  reset(): void {
    this.buf = this.own;
    this.start = 0;
    this.at = 0;
    this.end = this.own.length;
    this.spilled = false;
  }

  /** Starts a body in `buf` between `start` and `end` (the ring's free room). */
  into(buf: Buffer, start: number, end: number): void {
    this.buf = buf;
    this.start = start;
    this.at = start;
    this.end = end;
    this.spilled = false;
  }

  /** Back to the start of the body (a writer that failed half way). */
  restart(): void {
    this.at = this.start;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.at - this.start;
  }

  /** The body as a string (UTF-8 decoded): for the callers that want one (tests, the memory path). */
  toString(): string {
    return this.buf.toString('utf8', this.start, this.at);
  }

  /** The body as a Buffer over the bytes (a view: valid until the next body). */
  bytes(): Buffer {
    return this.buf.subarray(this.start, this.at);
  }

  /** Makes room for `n` more bytes: the own buffer, grown, with what was written so far. */
  private room(n: number): void {
    const len = this.at - this.start;
    let size = this.own.length;
    while (size < len + n) size *= 2;
    const next = size === this.own.length && this.buf !== this.own ? this.own : Buffer.allocUnsafeSlow(size);
    next.set(this.buf.subarray(this.start, this.at), 0);
    if (this.buf !== this.own) this.spilled = true;
    this.own = next;
    this.buf = next;
    this.start = 0;
    this.at = len;
    this.end = size;
  }

  /** `s`, which the caller knows to be ASCII that JSON writes as it is (keys, `{`, `,`, `null`). */
  ascii(s: string): void {
    const n = s.length;
    if (this.at + n > this.end) this.room(n);
    const b = this.buf;
    let p = this.at;
    for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
    this.at = p;
  }

  /** `s` as UTF-8 (JSON text made elsewhere, e.g. JSON.stringify's). */
  text(s: string): void {
    // 3 bytes per UTF-16 unit bound its UTF-8 length.
    if (this.at + 3 * s.length > this.end) this.room(3 * s.length);
    this.at += this.buf.write(s, this.at, 'utf8');
  }

  /**
   * JSON.stringify(s): printable ASCII without `"` and `\` (nearly every string) is copied as it
   * is between quotes; the first other character hands the whole string to JSON.stringify.
   */
  quoted(s: string): void {
    const n = s.length;
    if (this.at + n + 2 > this.end) this.room(n + 2);
    const b = this.buf;
    let p = this.at;
    b[p++] = QUOTE;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === QUOTE || c === 0x5c) return this.text(JSON.stringify(s));
      b[p++] = c;
    }
    b[p++] = QUOTE;
    this.at = p;
  }

  /** String(n) for a finite number: the digits of a non-negative integer below 2^31 without a string. */
  number(n: number): void {
    if ((n | 0) !== n || n < 0) return this.ascii(String(n));
    // -0 is `0` here as String(-0) is.
    let digits = 1;
    for (let x = n; x >= 10; x = (x / 10) | 0) digits++;
    if (this.at + digits > this.end) this.room(digits);
    const b = this.buf;
    let p = this.at + digits;
    this.at = p;
    let x = n;
    do {
      const q = (x / 10) | 0;
      b[--p] = 0x30 + x - q * 10;
      x = q;
    } while (x > 0);
  }
}
