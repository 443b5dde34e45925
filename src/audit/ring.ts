/**
 * The audit log's hand-over ring: chained lines go from the event loop (writer.ts) to the writer
 * thread (writer-thread.ts) through one SharedArrayBuffer instead of a message each. The event
 * loop copies each record's UTF-8 bytes into the ring as it is written and moves the published
 * position; the thread, which wakes itself every WRITE_PERIOD_MS while records flow, writes what
 * was published meanwhile to the file straight from the ring (one write for all of it) and moves
 * the consumed position. After ten periods in a row with nothing published it sleeps on the futex
 * until the next publish wakes it. So a busy proxy's event loop pays no wake-up at all, and no
 * timer per batch (docs/benchmarks.md, "Fifth pass: audit hand-over" and "Sixth pass").
 *
 * What the ring holds between the consumed and the published positions is what the thread has not
 * finished: a thread started after one died reads on from the consumed position (writer-thread.ts
 * skips what is already in the file), so the ring is also the record of unconfirmed batches.
 *
 * Layout: CTL_BYTES of Int32 control words, then the data area (a power of two). Positions are byte
 * counts that wrap at 2^32 (Int32 arithmetic); the offset in the data area is `pos & (size - 1)`.
 * Each batch is one contiguous entry, 8-byte aligned: Int32 entry length, Int32 text length,
 * Float64 first seq, Float64 last seq, then the text. An entry that would not fit before the end of
 * the data area is preceded by a wrap marker (text length -1) covering the rest of the area.
 */

import type { JsonOut } from './json-out.js';

/** Control words (Int32 indexes). */
export const PUB = 0; // published position (event loop writes)
export const CON = 1; // consumed position (thread writes)
export const FLUSH = 2; // the last flush id asked for (event loop writes); the thread answers `flushed`
export const CLOSE = 3; // 1: finish what is published, close the file and end
export const WANT_SPACE = 4; // 1: the event loop holds batches the ring had no room for; the thread says `space`
const EPOCH = 5; // moved by every wake-up and signal: the word the thread sleeps on, so no wake-up is missed
export const IDLE = 6; // 1: the thread found nothing for IDLE_ROUNDS periods and sleeps until woken (idle())
const CTL_BYTES = 64;
const ENTRY_HEAD = 24;
const WRAP = -1;

/**
 * While records flow, the thread wakes itself this often and writes what was published meanwhile;
 * the event loop wakes it only after it went idle (ten periods with nothing published,
 * writer-thread.ts IDLE_ROUNDS). So a
 * record waits at most about one period in the ring before its append starts (the crash window,
 * docs/operations.md), and a busy proxy pays no wake-up per batch: on this VM a cross-CPU wake-up
 * costs the waker 10-12 us of CPU and the core for 50-90 us (docs/benchmarks.md, "Sixth pass").
 */
export const WRITE_PERIOD_MS = 5;

/** Default data area: ~1 s of records at 10 000 requests/s. */
export const DEFAULT_RING_BYTES = 4 * 1024 * 1024;

export interface Entry {
  first: number;
  last: number;
  /** Where the text is in the ring's data area (RingReader.text reads it). */
  start: number;
  end: number;
}

function views(sab: SharedArrayBuffer): { ctl: Int32Array; size: number; i32: Int32Array; f64: Float64Array; bytes: Buffer } {
  const size = sab.byteLength - CTL_BYTES;
  return {
    ctl: new Int32Array(sab, 0, CTL_BYTES / 4),
    size,
    i32: new Int32Array(sab, CTL_BYTES, size / 4),
    f64: new Float64Array(sab, CTL_BYTES, size / 8),
    bytes: Buffer.from(sab, CTL_BYTES, size),
  };
}

/** A ring with a data area of `bytes` (rounded up to a power of two, at least 4 KiB). */
export function createRing(bytes: number): SharedArrayBuffer {
  let size = 4096;
  while (size < bytes) size *= 2;
  return new SharedArrayBuffer(CTL_BYTES + size);
}

const pad8 = (n: number): number => (n + 7) & ~7;

/** The event loop's side. */
export class RingWriter {
  private readonly v: ReturnType<typeof views>;

  constructor(sab: SharedArrayBuffer) {
    this.v = views(sab);
  }

  /** The largest batch text (bytes) an entry can hold: a line longer than this cannot be handed over. */
  get maxText(): number {
    return this.v.size / 2 - ENTRY_HEAD;
  }

  /**
   * Points `out` at the free room where the next entry's text goes (json-out.ts), so a record can
   * be written straight into the ring and published by commit() without a copy. Room that ends at
   * the end of the data area or at the consumed position; none (`out` starts in its own buffer)
   * when the next entry would start too close to either.
   */
  room(out: JsonOut): void {
    const { ctl, size, bytes } = this.v;
    const pub = Atomics.load(ctl, PUB);
    const off = pub & (size - 1);
    const free = size - ((pub - Atomics.load(ctl, CON)) | 0);
    // Leaves a byte for the "\n"; the entry's padding fits, as both bounds are multiples of 8.
    const end = off + Math.min(size - off, free) - 1;
    if (end - off > ENTRY_HEAD) out.into(bytes, off + ENTRY_HEAD, end);
    else out.reset();
  }

  /**
   * Publishes the text `out` wrote into the room room() gave it, with a "\n" after it, as one entry
   * of `first`..`last`. False (nothing published) when the text is not there: it went past the
   * room into `out`'s own buffer, or room() was not called for this entry.
   */
  commit(out: JsonOut, first: number, last: number): boolean {
    const { ctl, size, bytes } = this.v;
    if (out.buf !== bytes || out.spilled) return false;
    const pub = Atomics.load(ctl, PUB);
    const off = pub & (size - 1);
    if (out.start !== off + ENTRY_HEAD) return false;
    bytes[out.at] = 0x0a;
    this.seal(pub, off, 0, out.at + 1 - out.start, first, last);
    return true;
  }

  /**
   * Copies the batch into the ring and publishes it, waking the thread only if it went idle (a
   * thread that is not idle comes for it within WRITE_PERIOD_MS on its own). False (nothing
   * written) when the ring has no room for it now; the caller keeps it and tries again later.
   * `bytes` bounds the UTF-8 length of the lines (at most maxText); 3 per UTF-16 unit always does.
   * `nl`: each line is followed by a "\n" (counted in `bytes`), so the caller need not append one.
   */
  publish(lines: readonly string[] | string | Buffer, bytes: number, first: number, last: number, nl = false): boolean {
    const { ctl, size, i32, bytes: buf } = this.v;
    const pub = Atomics.load(ctl, PUB);
    const free = size - ((pub - Atomics.load(ctl, CON)) | 0);
    let off = pub & (size - 1);
    const need = pad8(ENTRY_HEAD + bytes);
    let skip = 0;
    if (off + need > size) skip = size - off; // wrap: the entry starts at the beginning of the area
    if (skip + need > free) return false;
    if (skip > 0) {
      i32[off >> 2] = skip;
      i32[(off >> 2) + 1] = WRAP;
      off = 0;
    }
    let at = off + ENTRY_HEAD;
    // One record (its bytes, or a string) or a batch that waited.
    if (typeof lines === 'string' || Buffer.isBuffer(lines)) {
      at += typeof lines === 'string' ? buf.write(lines, at) : lines.copy(buf, at);
      if (nl) buf[at++] = 0x0a;
    } else {
      for (const l of lines) {
        at += buf.write(l, at);
        if (nl) buf[at++] = 0x0a;
      }
    }
    this.seal(pub, off, skip, at - off - ENTRY_HEAD, first, last);
    return true;
  }

  /** Writes the head of the entry at `off` with `len` bytes of text and publishes it. */
  private seal(pub: number, off: number, skip: number, len: number, first: number, last: number): void {
    const { ctl, i32, f64 } = this.v;
    i32[off >> 2] = pad8(ENTRY_HEAD + len);
    i32[(off >> 2) + 1] = len;
    f64[(off >> 3) + 1] = first;
    f64[(off >> 3) + 2] = last;
    // The atomic store orders the plain writes above before it: a thread that loads this position
    // sees the whole entry.
    Atomics.store(ctl, PUB, (pub + skip + pad8(ENTRY_HEAD + len)) | 0);
    // Loaded after the store above: a thread that declared itself idle before this publish either
    // saw the new position (idle() looks after declaring) or is seen idle here and woken.
    if (Atomics.load(ctl, IDLE) === 1 && Atomics.compareExchange(ctl, IDLE, 1, 0) === 1) this.wake();
  }

  /** Asks the thread to say `space` once it frees room; true if there is room already (try again now). */
  wantSpace(bytes: number): boolean {
    const { ctl, size } = this.v;
    Atomics.store(ctl, WANT_SPACE, 1);
    // Checked after the flag is up: a thread that consumed in between either saw the flag or left
    // the room this sees.
    return 2 * pad8(ENTRY_HEAD + bytes) <= size - ((Atomics.load(ctl, PUB) - Atomics.load(ctl, CON)) | 0);
  }

  /** Sets a control word and wakes the thread, idle or not. */
  signal(word: typeof FLUSH | typeof CLOSE, value: number): void {
    Atomics.store(this.v.ctl, word, value);
    this.wake();
  }

  private wake(): void {
    Atomics.add(this.v.ctl, EPOCH, 1);
    Atomics.notify(this.v.ctl, EPOCH);
  }
}

/**
 * The thread's side. next() reads ahead of the consumed position; consume() frees everything read
 * so far at once, after the thread wrote it (so a thread that dies first leaves it to the next).
 */
export class RingReader {
  private readonly v: ReturnType<typeof views>;
  /** Where next() reads on from; meaningful while `ahead` (entries read but not yet consumed). */
  private pos = 0;
  private ahead = false;

  constructor(sab: SharedArrayBuffer) {
    this.v = views(sab);
  }

  /** The next published entry, or null when the thread has read everything published. */
  next(): Entry | null {
    const { ctl, size, i32, f64 } = this.v;
    let pos = this.ahead ? this.pos : Atomics.load(ctl, CON);
    for (;;) {
      if (pos === Atomics.load(ctl, PUB)) break;
      const off = pos & (size - 1);
      const len = i32[(off >> 2) + 1]!;
      pos = (pos + i32[off >> 2]!) | 0;
      if (len === WRAP) continue;
      this.pos = pos;
      this.ahead = true;
      return { first: f64[(off >> 3) + 1]!, last: f64[(off >> 3) + 2]!, start: off + ENTRY_HEAD, end: off + ENTRY_HEAD + len };
    }
    this.pos = pos;
    this.ahead = true;
    return null;
  }

  /** An entry's text, a view into the ring: valid until consume(). */
  text(e: Entry): Buffer {
    return this.v.bytes.subarray(e.start, e.end);
  }

  /** Frees every entry next() returned; true when the event loop asked to hear of freed room. */
  consume(): boolean {
    if (!this.ahead) return false;
    Atomics.store(this.v.ctl, CON, this.pos);
    this.ahead = false;
    return Atomics.compareExchange(this.v.ctl, WANT_SPACE, 1, 0) === 1;
  }

  load(word: number): number {
    return Atomics.load(this.v.ctl, word);
  }

  /** Where the event loop's wake-ups and signals stand: read before looking for work, then sleep. */
  epoch(): number {
    return Atomics.load(this.v.ctl, EPOCH);
  }

  /** Sleeps WRITE_PERIOD_MS, or less if a signal comes after `epoch` (terminate() also ends the wait). */
  pause(epoch: number): void {
    Atomics.wait(this.v.ctl, EPOCH, epoch, WRITE_PERIOD_MS);
  }

  /**
   * Declares the thread idle and sleeps until the next publish or signal after `epoch`; returns at
   * once if something was published meanwhile. Call only with everything read consumed.
   */
  idle(epoch: number): void {
    const { ctl } = this.v;
    Atomics.store(ctl, IDLE, 1);
    // Nobody waits on this word in a running proxy (no system call then); tests wait for the
    // thread to go idle (writer.ts writerIdle).
    Atomics.notify(ctl, IDLE);
    // Looked at after the flag is up: a publish this misses sees the flag and wakes the thread.
    if (Atomics.load(ctl, PUB) === Atomics.load(ctl, CON)) Atomics.wait(ctl, EPOCH, epoch);
    Atomics.store(ctl, IDLE, 0);
  }
}

/** A batch on the event loop, before it goes into the ring. */
export interface Batch {
  first: number;
  last: number;
  lines: string[];
  /** UTF-8 length of the lines. */
  bytes: number;
}
