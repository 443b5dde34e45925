/**
 * The scrubber the proxy, the audit log, the logs and every error path share. Compiled once per
 * (secrets, patterns) set; cheap to call. See docs/scrubbing.md for what is found and what replaces.
 */
import { Transform } from 'node:stream';
import type { CompiledPattern } from './patterns.js';
import { Matcher } from './matcher.js';
import type { KnownSecret, Redaction } from './matcher.js';
import { ScrubEngine } from './engine.js';

export type { KnownSecret, Redaction } from './matcher.js';

/** Default cap on held bytes per stream. Well above twice the built-in window (see docs). */
export const DEFAULT_MAX_HOLD_BYTES = 64 * 1024;
/** Window assumed for an unbounded pattern (`+`, `*`, `{n,}`): matches up to this long are found
 * whole across chunks; longer ones are cut at the hold limit and their tail swallowed. */
export const UNBOUNDED_PATTERN_WINDOW = 1024;

export interface ScrubStreamOptions {
  onRedaction?: (r: Redaction) => void;
  maxHoldBytes?: number;
}

/** The Transform plus a view of its buffer, for metrics and the memory-bound test. */
export type ScrubStream = Transform & { readonly heldBytes: number; readonly peakHeldBytes: number };

export interface Scrubber {
  /** For headers, audit records, logs, error bodies. Text is handled as UTF-8. */
  scrubString(text: string): { text: string; redactions: Redaction[] };
  /** Byte-exact variant (e.g. a latin1 header value or a whole small body). */
  scrubBuffer(buf: Buffer): { buf: Buffer; redactions: Redaction[] };
  createStream(opts?: ScrubStreamOptions): ScrubStream;
  /** True when there is nothing to look for (the proxy may skip the transform). */
  readonly empty: boolean;
  /** Bytes a stream holds back before emitting (the lookahead window). */
  readonly window: number;
}

export function compileScrubber(o: { secrets: readonly KnownSecret[]; patterns: readonly CompiledPattern[] }): Scrubber {
  const matcher = new Matcher(o.secrets, o.patterns, UNBOUNDED_PATTERN_WINDOW);
  const empty = matcher.empty;

  const scrubBuffer = (buf: Buffer): { buf: Buffer; redactions: Redaction[] } => {
    if (empty || buf.length === 0) return { buf, redactions: [] };
    const redactions: Redaction[] = [];
    // One final pass: the whole input is visible, so nothing is held or forced.
    const engine = new ScrubEngine(matcher, DEFAULT_MAX_HOLD_BYTES, (r) => redactions.push(r));
    return { buf: engine.end(buf), redactions };
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
    createStream(opts: ScrubStreamOptions = {}) {
      const maxHold = opts.maxHoldBytes ?? DEFAULT_MAX_HOLD_BYTES;
      if (!Number.isInteger(maxHold) || maxHold < 256) throw new Error('maxHoldBytes must be an integer >= 256');
      const onRedaction = opts.onRedaction ?? (() => undefined);
      const engine = new ScrubEngine(matcher, maxHold, onRedaction);
      const t = new Transform({
        transform(chunk: Buffer | string, _enc, cb) {
          try {
            const out = engine.write(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
            if (out.length > 0) this.push(out);
            cb();
          } catch (e) {
            // Fail closed: the proxy aborts the response rather than pass unscrubbed bytes.
            cb(e instanceof Error ? e : new Error('scrubber failed'));
          }
        },
        flush(cb) {
          try {
            const out = engine.end();
            if (out.length > 0) this.push(out);
            cb();
          } catch (e) {
            cb(e instanceof Error ? e : new Error('scrubber failed'));
          }
        },
      });
      Object.defineProperty(t, 'heldBytes', { get: () => engine.held });
      Object.defineProperty(t, 'peakHeldBytes', { get: () => engine.peakHeld });
      return t as ScrubStream;
    },
  };
}
