/**
 * The streaming scrubber: a Transform around one ScrubEngine. A class (not a Transform with
 * per-instance properties defined on it) so every stream shares one hidden class and one set of
 * prototype getters: per-instance `Object.defineProperty` gave each response stream its own
 * shape, which made the stream machinery megamorphic and was ~30% of a small request's CPU.
 *
 * Coalescing: chunks that queue up while the reader is busy (backpressure) reach `_writev`
 * together and are scanned as one buffer. Chunks that arrive while the reader keeps up are
 * batched for one turn of the event loop: a TLS socket hands its records over one 16 KiB chunk
 * at a time, several per read, all within one I/O callback; they are queued and scanned together
 * when that turn ends (setImmediate), or at once when BATCH bytes are queued. So a download is
 * scanned (and written on) in pieces of up to 64 KiB, not per record, and nothing waits longer
 * than the current turn: no timer, no added latency beyond the bytes already in hand. While the
 * reader is behind (its buffer at its high-water mark) every chunk is scanned at once, so
 * Transform's own backpressure holds as before.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { ScrubEngine } from './engine.js';
import { scrubFailed } from './failed.js';

const EMPTY = Buffer.alloc(0);
/** Input queued before the writer is paused: the largest batch `_writev` sees. Bounded memory. */
const WRITABLE_HWM = 64 * 1024;
/** Bytes queued within one turn before they are scanned without waiting for the turn's end. */
export const BATCH = 64 * 1024;

function toBuffer(c: Buffer | string | undefined): Buffer {
  return typeof c === 'string' ? Buffer.from(c, 'utf8') : (c ?? EMPTY);
}

/** A static callback with the stream as its argument: no closure per stream. */
function onTurn(t: ScrubTransform): void {
  t.endTurn();
}

export class ScrubTransform extends Transform {
  private scanned = 0;
  private passing = false;
  private timer: NodeJS.Timeout | undefined = undefined;
  /** Chunks of this turn not scanned yet (see the header), their total, and the turn's end. */
  private queue: Buffer[] = [];
  private queued = 0;
  private turn: NodeJS.Immediate | undefined = undefined;

  constructor(
    private readonly engine: ScrubEngine,
    /** Scan only the first `limit` input bytes; the rest passes unscanned. */
    private readonly limit: number,
    /** Idle flush delay in ms, or undefined for none. */
    private readonly idleMs: number | undefined,
    /** Queued bytes scanned without waiting for the turn's end: at most BATCH, and at most the
     * engine's hold limit, so a batch never feeds the engine more than one write could. */
    private readonly batch: number = BATCH,
  ) {
    super({ writableHighWaterMark: WRITABLE_HWM });
  }

  get scannedBytes(): number {
    return this.scanned;
  }

  /** Received, not yet emitted: the engine's window plus this turn's queued chunks. */
  get heldBytes(): number {
    return this.engine.held + this.queued;
  }

  get peakHeldBytes(): number {
    return this.engine.peakHeld;
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    this.accept(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk, cb);
  }

  /** Several queued chunks (see the header): scanned as one batch. */
  override _writev(chunks: Array<{ chunk: Buffer | string; encoding: BufferEncoding }>, cb: (error?: Error | null) => void): void {
    for (let i = 0; i < chunks.length - 1; i++) this.enqueue(toBuffer(chunks[i]?.chunk));
    const last = toBuffer(chunks[chunks.length - 1]?.chunk);
    // Transform's _write keeps its own backpressure handshake; it calls _transform once.
    this._write(last, 'latin1', cb);
  }

  private enqueue(buf: Buffer): void {
    this.queue.push(buf);
    this.queued += buf.length;
  }

  private accept(buf: Buffer, cb: TransformCallback): void {
    if (this.passing && this.queued === 0) return cb(null, buf);
    this.enqueue(buf);
    // The reader keeps up and the batch is small: wait for the rest of this turn's chunks.
    if (this.queued < this.batch && this.readableLength < this.readableHighWaterMark) {
      this.turn ??= setImmediate(onTurn, this);
      return cb();
    }
    try {
      this.scanQueued();
      cb();
    } catch (e) {
      // Fail closed: the proxy aborts the response rather than pass unscrubbed bytes.
      cb(scrubFailed(e));
    }
  }

  /** The turn ended (see the header): scan what it brought. */
  endTurn(): void {
    this.turn = undefined;
    if (this.destroyed) return;
    try {
      this.scanQueued();
    } catch (e) {
      this.destroy(scrubFailed(e));
    }
  }

  /** Scans (and pushes) everything queued, as one write. */
  private scanQueued(): void {
    if (this.turn) clearImmediate(this.turn);
    this.turn = undefined;
    if (this.queued === 0) return;
    const q = this.queue;
    const n = this.queued;
    this.queue = [];
    this.queued = 0;
    if (this.passing) {
      for (const c of q) if (c.length > 0) this.push(c);
      return;
    }
    // The common case: all of it is scanned; the engine copies the chunks once, after its held bytes.
    if (this.scanned + n <= this.limit) {
      this.scanned += n;
      this.afterScan(this.engine.writeAll(q));
      return;
    }
    this.scan(q.length === 1 ? (q[0] ?? EMPTY) : Buffer.concat(q, n));
  }

  /** The batch that reaches the scan limit: the rest passes unscanned from here on. */
  private scan(input: Buffer): void {
    let buf = input;
    let rest: Buffer | undefined;
    if (this.scanned + buf.length > this.limit) {
      rest = buf.subarray(this.limit - this.scanned);
      buf = buf.subarray(0, this.limit - this.scanned);
    }
    this.scanned += buf.length;
    const out = rest ? this.engine.end(buf) : this.engine.write(buf);
    if (!rest) return this.afterScan(out);
    if (out.length > 0) this.push(out);
    this.passing = true;
    this.stopTimer();
    if (rest.length > 0) this.push(rest);
  }

  private afterScan(out: Buffer): void {
    if (out.length > 0) this.push(out);
    if (this.idleMs !== undefined && this.engine.held > 0) {
      // One timer per stream, re-armed per scan (refresh() allocates nothing).
      if (this.timer) this.timer.refresh();
      else this.timer = setTimeout(() => this.idleFlush(), this.idleMs);
    } else this.stopTimer();
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private idleFlush(): void {
    this.timer = undefined;
    try {
      this.scanQueued();
      const soft = this.engine.flushSoft();
      if (soft.length > 0) this.push(soft);
    } catch (e) {
      this.destroy(scrubFailed(e));
    }
  }

  override _flush(cb: TransformCallback): void {
    this.stopTimer();
    try {
      this.scanQueued();
      const out = this.passing ? EMPTY : this.engine.end();
      if (out.length > 0) this.push(out);
      cb();
    } catch (e) {
      cb(scrubFailed(e));
    }
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.stopTimer();
    if (this.turn) clearImmediate(this.turn);
    this.turn = undefined;
    this.queue = [];
    this.queued = 0;
    cb(err);
  }
}
