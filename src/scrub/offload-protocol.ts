/**
 * What the event loop (offload.ts) and the scan worker (offload-thread.ts) say to each other, and
 * the bounded id cache both sides keep in step: the worker keeps compiled scrubbers (and compiled
 * pattern sets) by an id the event loop chose, and the event loop sends a definition only when
 * the worker does not have it. Both sides apply the same operations in the same order (messages
 * on one port are ordered), so the event loop's copy of the cache says exactly what the worker
 * holds; a worker that lacks one anyway fails that stream (fail closed), never scans with less.
 */
import type { KnownSecret, Redaction } from './matcher.js';
import type { PatternSpec } from './pattern-spec.js';

/** Compiled scrubbers the worker keeps (ScrubberCache's bound). */
export const MAX_WORKER_SCRUBBERS = 256;
/** Compiled pattern sets the worker keeps (one per policy load in practice). */
export const MAX_WORKER_PATTERN_SETS = 16;

/** Event loop → worker. `s` names a stream; `buf` is transferred, never copied. */
export type ToWorker =
  | {
      t: 'open';
      s: number;
      scrubber: number;
      /** Sent when the worker does not have `scrubber` yet. */
      secrets?: readonly KnownSecret[];
      /** A copy of the handle key (secrets/handles.ts handleCheck). */
      handleKey?: Uint8Array | undefined;
      patterns: number;
      /** Sent when the worker does not have `patterns` yet. */
      specs?: readonly PatternSpec[];
      maxHold: number;
    }
  | { t: 'write'; s: number; buf: ArrayBuffer }
  /** The last scanned bytes: the engine ends and is dropped (the end of the body, or the scan limit). */
  | { t: 'end'; s: number; buf: ArrayBuffer }
  /** The idle flush (engine.flushSoft). */
  | { t: 'soft'; s: number }
  /** The stream was destroyed: drop its engine (no answer). */
  | { t: 'close'; s: number };

/** Worker → event loop, one per write, end and soft, in the order they were asked. */
export type FromWorker =
  | { t: 'out'; s: number; out: ArrayBuffer | null; red: Redaction[] | null; held: number; peak: number }
  /** The stream's engine threw (or its scrubber could not be built): that stream fails closed. */
  | { t: 'fail'; s: number; message: string };

/** Insertion-ordered ids, most recently used last, at most `max`: the same on both sides. */
export class IdLru<V> {
  private readonly m = new Map<number, V>();
  constructor(private readonly max: number) {}

  /** The value, marked as just used; undefined when absent. */
  use(id: number): V | undefined {
    const v = this.m.get(id);
    if (v === undefined) return undefined;
    this.m.delete(id);
    this.m.set(id, v);
    return v;
  }

  add(id: number, v: V): void {
    if (this.m.size >= this.max) this.m.delete(this.m.keys().next().value as number);
    this.m.set(id, v);
  }
}
