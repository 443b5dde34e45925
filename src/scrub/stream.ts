/**
 * The streaming scrubber: a Transform around one ScrubEngine. A class (not a Transform with
 * per-instance properties defined on it) so every stream shares one hidden class and one set of
 * prototype getters: per-instance `Object.defineProperty` gave each response stream its own
 * shape, which made the stream machinery megamorphic and was ~30% of a small request's CPU.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { ScrubEngine } from './engine.js';

const EMPTY = Buffer.alloc(0);

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
    super();
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
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
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
        if (rest.length > 0) this.push(rest);
      } else if (this.idleMs !== undefined && this.engine.held > 0) {
        this.timer = setTimeout(() => this.idleFlush(), this.idleMs);
      }
      cb();
    } catch (e) {
      // Fail closed: the proxy aborts the response rather than pass unscrubbed bytes.
      cb(asError(e));
    }
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
    if (this.timer) clearTimeout(this.timer);
    try {
      const out = this.passing ? EMPTY : this.engine.end();
      if (out.length > 0) this.push(out);
      cb();
    } catch (e) {
      cb(asError(e));
    }
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (this.timer) clearTimeout(this.timer);
    cb(err);
  }
}
