/**
 * The streaming scrubber: a Transform around one ScrubEngine. A class (not a Transform with
 * per-instance properties defined on it) so every stream shares one hidden class and one set of
 * prototype getters: per-instance `Object.defineProperty` gave each response stream its own
 * shape, which made the stream machinery megamorphic and was ~30% of a small request's CPU.
 *
 * Coalescing without waiting: chunks that queue up while the reader is busy (backpressure, the
 * case where throughput matters) reach `_writev` together and are scanned as one buffer, so a
 * 100 MB download is scanned in ≥ 64 KiB pieces rather than per 16 KiB TLS record. Nothing is
 * ever held back to make a batch: a chunk that arrives while the reader keeps up is scanned at
 * once, exactly as before.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { ScrubEngine } from './engine.js';

const EMPTY = Buffer.alloc(0);
/** Input queued before the writer is paused: the largest batch `_writev` sees. Bounded memory. */
const WRITABLE_HWM = 64 * 1024;

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error('scrubber failed');
}

export class ScrubTransform extends Transform {
  private scanned = 0;
  private passing = false;
  private timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    private readonly engine: ScrubEngine,
    /** Scan only the first `limit` input bytes; the rest passes unscanned. */
    private readonly limit: number,
    /** Idle flush delay in ms, or undefined for none. */
    private readonly idleMs: number | undefined,
  ) {
    super({ writableHighWaterMark: WRITABLE_HWM });
  }

  get scannedBytes(): number {
    return this.scanned;
  }

  get heldBytes(): number {
    return this.engine.held;
  }

  get peakHeldBytes(): number {
    return this.engine.peakHeld;
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      let buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      if (this.passing) return cb(null, buf);
      let rest: Buffer | undefined;
      if (this.scanned + buf.length > this.limit) {
        rest = buf.subarray(this.limit - this.scanned);
        buf = buf.subarray(0, this.limit - this.scanned);
      }
      this.scanned += buf.length;
      const out = rest ? this.engine.end(buf) : this.engine.write(buf);
      if (out.length > 0) this.push(out);
      if (rest) {
        this.passing = true;
        this.stopTimer();
        if (rest.length > 0) this.push(rest);
      } else if (this.idleMs !== undefined && this.engine.held > 0) {
        // One timer per stream, re-armed per chunk (refresh() allocates nothing).
        if (this.timer) this.timer.refresh();
        else this.timer = setTimeout(() => this.idleFlush(), this.idleMs);
      } else this.stopTimer();
      cb();
    } catch (e) {
      // Fail closed: the proxy aborts the response rather than pass unscrubbed bytes.
      cb(asError(e));
    }
  }

  /** Several queued chunks (see the header): one write of their concatenation. */
  override _writev(chunks: Array<{ chunk: Buffer | string; encoding: BufferEncoding }>, cb: (error?: Error | null) => void): void {
    const bufs = chunks.map((c) => (typeof c.chunk === 'string' ? Buffer.from(c.chunk, 'utf8') : c.chunk));
    // Transform's _write keeps its own backpressure handshake; it calls _transform once.
    this._write(bufs.length === 1 ? (bufs[0] ?? EMPTY) : Buffer.concat(bufs), 'latin1', cb);
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private idleFlush(): void {
    this.timer = undefined;
    try {
      const soft = this.engine.flushSoft();
      if (soft.length > 0) this.push(soft);
    } catch (e) {
      this.destroy(asError(e));
    }
  }

  override _flush(cb: TransformCallback): void {
    this.stopTimer();
    try {
      const out = this.passing ? EMPTY : this.engine.end();
      if (out.length > 0) this.push(out);
      cb();
    } catch (e) {
      cb(asError(e));
    }
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.stopTimer();
    cb(err);
  }
}
