/**
 * The scrubber the proxy, the audit log, the logs and every error path share. Compiled once per
 * (secrets, patterns) set; cheap to call. See docs/scrubbing.md for what is found and what replaces.
 */
import type { CompiledPattern } from './patterns.js';
import { Matcher } from './matcher.js';
import type { KnownSecret, Redaction } from './matcher.js';
import { ScrubEngine } from './engine.js';
import { BATCH, ScrubTransform } from './stream.js';
import { scrubFailed } from './failed.js';

export type { KnownSecret, Redaction } from './matcher.js';

/** Default cap on held bytes per stream. Well above twice the built-in window (see docs). */
export const DEFAULT_MAX_HOLD_BYTES = 64 * 1024;
/** The default hold grows to fit two of the longest secret form (a long secret's every-character
 * `\uXXXX` form is six times its length: with 64 KiB, forms over 32 704 bytes could straddle a
 * scan and pass), up to this cap. Only the operator's secrets make it grow, never a response. */
const MAX_AUTO_HOLD_BYTES = 2 * 1024 * 1024;
/** Window assumed for an unbounded pattern (`+`, `*`, `{n,}`): matches up to this long are found
 * whole across chunks; longer ones are cut at the hold limit and their tail swallowed. */
export const UNBOUNDED_PATTERN_WINDOW = 1024;

export interface ScrubStreamOptions {
  onRedaction?: (r: Redaction) => void;
  maxHoldBytes?: number;
  /** When no byte arrives for this long, held bytes up to the last line feed are emitted
   * (SSE and chunked streams: an event is not held back). Default: no timer. */
  idleFlushMs?: number;
  /** Scan only the first N input bytes; the rest passes unscanned (an operator's choice,
   * `scrub.max_body_scan`). Default: scan everything. */
  maxScanBytes?: number;
}

/** The Transform plus a view of its buffer, for metrics and the memory-bound test. */
export type ScrubStream = ScrubTransform;

const noop = (): void => undefined;

export interface Scrubber {
  /** For headers, audit records, logs, error bodies. Text is handled as UTF-8. */
  scrubString(text: string): { text: string; redactions: Redaction[] };
  /** Byte-exact variant (e.g. a latin1 header value or a whole small body). */
  scrubBuffer(buf: Buffer): { buf: Buffer; redactions: Redaction[] };
  createStream(opts?: ScrubStreamOptions): ScrubStream;
  /** The same incremental scrubbing, synchronous: `write` returns what may be emitted now, `end`
   * the rest (WebSocket messages, ws-frames.ts, where output must follow frame boundaries). */
  createIncremental(onRedaction?: (r: Redaction) => void): IncrementalScrub;
  /** True when there is nothing to look for (the proxy may skip the transform). */
  readonly empty: boolean;
  /** Bytes a stream holds back before emitting (the lookahead window). */
  readonly window: number;
}

export interface IncrementalScrub {
  write(chunk: Buffer): Buffer;
  /** Several chunks as one write (copied once into the engine's buffer). */
  writeAll(chunks: readonly Buffer[]): Buffer;
  end(last?: Buffer): Buffer;
}

/**
 * `isHandle`: when given, token-pattern finds inside a handle-shaped run for which it returns true
 * are not redacted (the proxy passes a check that the handle really opens with Turret's key, so
 * an upstream cannot shield a token by prefixing it with `trt_`). Known secrets are always found.
 */
export function compileScrubber(o: { secrets: readonly KnownSecret[]; patterns: readonly CompiledPattern[]; isHandle?: (text: string) => boolean }): Scrubber {
  const matcher = new Matcher(o.secrets, o.patterns, UNBOUNDED_PATTERN_WINDOW, o.isHandle);
  const empty = matcher.empty;
  const hold = Math.min(MAX_AUTO_HOLD_BYTES, Math.max(DEFAULT_MAX_HOLD_BYTES, 2 * matcher.window + 256));

  const scrubBuffer = (buf: Buffer): { buf: Buffer; redactions: Redaction[] } => {
    if (empty || buf.length === 0) return { buf, redactions: [] };
    const redactions: Redaction[] = [];
    // One final pass: the whole input is visible, so nothing is held or forced.
    const engine = new ScrubEngine(matcher, DEFAULT_MAX_HOLD_BYTES, (r) => redactions.push(r));
    try {
      return { buf: engine.end(buf), redactions };
    } catch (e) {
      throw scrubFailed(e);
    }
  };

  return {
    empty,
    window: matcher.window,
    scrubBuffer,
    scrubString(text: string) {
      if (empty || text.length === 0) return { text, redactions: [] };
      const r = scrubBuffer(Buffer.from(text, 'utf8'));
      return { text: r.redactions.length === 0 ? text : r.buf.toString('utf8'), redactions: r.redactions };
    },
    createIncremental(onRedaction = () => undefined) {
      if (empty) return { write: (b: Buffer) => b, writeAll: (bs: readonly Buffer[]) => Buffer.concat(bs), end: (b?: Buffer) => b ?? Buffer.alloc(0) };
      const engine = new ScrubEngine(matcher, hold, onRedaction);
      return { write: (b: Buffer) => engine.write(b), writeAll: (bs: readonly Buffer[]) => engine.writeAll(bs), end: (b?: Buffer) => engine.end(b) };
    },
    createStream(opts: ScrubStreamOptions = {}) {
      const maxHold = opts.maxHoldBytes ?? hold;
      if (!Number.isInteger(maxHold) || maxHold < 256) throw new Error('maxHoldBytes must be an integer >= 256');
      const engine = new ScrubEngine(matcher, maxHold, opts.onRedaction ?? noop);
      return new ScrubTransform(engine, opts.maxScanBytes ?? Infinity, opts.idleFlushMs, Math.min(BATCH, maxHold));
    },
  };
}
