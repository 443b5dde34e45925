/**
 * Large response bodies are scanned on a worker thread (offload-thread.ts), so the event loop
 * spends ~40% less CPU per scrubbed MB and a large scrubbed download can use a second core
 * (docs/benchmarks.md, "Scrubbing → Eighth round": the process's CPU per MB does not fall; the
 * throughput gain measured against the older scan is not measurable with today's cheaper one on
 * the 2-core machine, and other requests' latency did not improve there).
 *
 * Which bodies: those the proxy knows to be large, a declared Content-Length of at least
 * OFFLOAD_MIN_BYTES (forward.ts). Small and unknown-length bodies (SSE, chunked API answers) stay
 * on the event loop: a hop to the worker and back is latency they would pay per batch, while the
 * scan of a small body costs less than the hop.
 *
 * How: OffloadTransform is ScrubTransform's twin on the event loop's side. The stream's one
 * ScrubEngine lives wholly in the worker (its state never crosses threads); each batch is copied
 * once into a buffer of its own and transferred, the answer (scanned output, redactions, held
 * bytes) is transferred back. At most MAX_IN_FLIGHT batches per stream are in flight; the next
 * one grows meanwhile, up to BATCH, then the Transform's callback waits for an answer and the
 * Writable's buffer fills and pauses the upstream (see _transform: memory per stream is bounded).
 * Messages on one port are ordered, so output and redaction callbacks keep the input's order.
 *
 * Fail closed: a worker that errors, exits or cannot start fails every open off-thread stream
 * with scrubFailed (the proxy aborts the response; the audit record's cause is internal_error),
 * never passes unscanned bytes; the next large body starts a new worker. An engine that throws
 * in the worker fails its stream only. One worker per process, started at the first large body,
 * unref'd (it never keeps the process alive), terminated by closeScanWorker when no stream uses it.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { scrubFailed } from './failed.js';
import type { KnownSecret, Redaction } from './matcher.js';
import type { CompiledPattern } from './patterns.js';
import type { PatternSpec } from './pattern-spec.js';
import { IdLru, MAX_WORKER_PATTERN_SETS, MAX_WORKER_SCRUBBERS, type FromWorker, type ToWorker } from './offload-protocol.js';

/** A body declared at least this long is scanned on the worker (see the header). 1 MiB: above
 * it the hop per batch (~64 KiB) is a small part of the scan it saves the event loop. */
export const OFFLOAD_MIN_BYTES = 1024 * 1024;
/** Input buffered in the Writable before the upstream is paused. */
const WRITABLE_HWM = 64 * 1024;
/** Bytes queued before they are sent without waiting for the turn's end or an answer. 256 KiB:
 * against 64 KiB the event loop's CPU per scrubbed MB fell from ~1/320 to ~1/440 s (fewer
 * messages and copies' setup) through the proxy (docs/benchmarks.md, "Eighth round"). */
const BATCH = 256 * 1024;
/** Batches in flight per stream: while the worker scans one, the next is on its way, so neither
 * thread waits for the other (with one, they took turns). */
const MAX_IN_FLIGHT = 2;
const EMPTY = Buffer.alloc(0);

/** What the worker needs to build a scrubber again (scrubber.ts makes it). */
export interface OffloadDef {
  secrets: readonly KnownSecret[];
  patterns: readonly CompiledPattern[];
  specs: readonly PatternSpec[];
  handleKey: Buffer | undefined;
}

let nextId = 1;
const scrubberIds = new WeakMap<OffloadDef, number>();
const patternIds = new WeakMap<readonly CompiledPattern[], number>();
function idOf<K extends object>(m: WeakMap<K, number>, k: K): number {
  let id = m.get(k);
  if (id === undefined) m.set(k, (id = nextId++));
  return id;
}

/** Starts the worker from dist/ or, under tsx (the tests), from source (as audit/writer-start.ts). */
function startThread(exitAfter: number | undefined): Worker {
  const workerData = { exitAfter };
  if (import.meta.url.endsWith('.ts')) {
    const url = new URL('./offload-thread.ts', import.meta.url).href;
    const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}); })`;
    return new Worker(boot, { eval: true, workerData });
  }
  return new Worker(new URL('./offload-thread.js', import.meta.url), { workerData });
}

/** Workers started in this process (the test hook below applies to the first only). */
let started = 0;

/** The worker and the streams it serves. */
class ScanWorker {
  private readonly worker: Worker;
  readonly streams = new Map<number, OffloadTransform>();
  private readonly scrubbers = new IdLru<true>(MAX_WORKER_SCRUBBERS);
  private readonly patternSets = new IdLru<true>(MAX_WORKER_PATTERN_SETS);
  private nextStream = 1;
  dead = false;

  constructor() {
    // Test hook (operator environment only, never an agent or a rule file): the first worker of
    // the process exits once it was given this many bytes, to test what a dying worker does.
    const hook = Number(process.env.TURRET_TEST_SCAN_WORKER_EXIT_AFTER);
    this.worker = startThread(started++ === 0 && hook > 0 ? hook : undefined);
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => this.streams.get(m.s)?.answer(m));
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('messageerror', (e) => this.fail(e));
    this.worker.on('exit', (code) => this.fail(new Error(`the scan worker exited (code ${code})`)));
  }

  open(t: OffloadTransform, def: OffloadDef, maxHold: number): number {
    const s = this.nextStream++;
    const scrubber = idOf(scrubberIds, def);
    const patterns = idOf(patternIds, def.patterns);
    // The same operations, in the same order, as the worker's (offload-protocol.ts).
    const specs = this.patternSets.use(patterns) ? undefined : def.specs;
    if (specs) this.patternSets.add(patterns, true);
    const known = this.scrubbers.use(scrubber) !== undefined;
    if (!known) this.scrubbers.add(scrubber, true);
    this.streams.set(s, t);
    this.post(
      known
        ? { t: 'open', s, scrubber, patterns, specs, maxHold }
        : { t: 'open', s, scrubber, patterns, specs, maxHold, secrets: def.secrets, handleKey: def.handleKey && new Uint8Array(def.handleKey) },
    );
    return s;
  }

  post(m: ToWorker, transfer?: ArrayBuffer[]): void {
    this.worker.postMessage(m, transfer);
  }

  close(s: number): void {
    if (!this.streams.delete(s) || this.dead) return;
    this.post({ t: 'close', s });
  }

  /** Every open stream fails closed; the next large body starts a new worker. */
  fail(e: unknown): void {
    if (current === this) current = null;
    if (this.dead) return;
    this.dead = true;
    void this.worker.terminate();
    const err = scrubFailed(e);
    for (const t of [...this.streams.values()]) t.destroy(err);
    this.streams.clear();
  }

  /** Tests: the thread ends as if it crashed ('exit' fails its streams). */
  kill(): Promise<number> {
    return this.worker.terminate();
  }

  terminate(): Promise<number> {
    if (current === this) current = null;
    this.dead = true;
    return this.worker.terminate();
  }
}

let current: ScanWorker | null = null;

function scanWorker(): ScanWorker {
  current ??= new ScanWorker();
  return current;
}

/**
 * The proxy's shutdown: terminates the worker when no stream uses it (another proxy in the same
 * process may still have streams open; the worker is unref'd either way).
 */
export async function closeScanWorker(): Promise<void> {
  if (current && current.streams.size === 0) await current.terminate();
}

/** Tests only (not reachable from an agent or a rule file): the worker dies as if it crashed. */
export async function killScanWorkerForTest(): Promise<void> {
  await current?.kill();
}

/** Static callbacks with the stream as their argument: no closure per stream. */
function onIdle(t: OffloadTransform): void {
  t.idleFlush();
}
function onTurn(t: OffloadTransform): void {
  t.endTurn();
}

/** What to do with the next answer: one per request in flight, in order. */
type Pending = {
  kind: 'write' | 'soft' | 'end' | 'limit';
  bytes: number;
  /** Called after the answer (the end's: the stream's flush callback). */
  cb: TransformCallback | null;
  /** Pushed after the answer's output: for 'limit', the bytes past the scan limit. */
  rest: Buffer[];
};

export class OffloadTransform extends Transform {
  private readonly worker: ScanWorker | null;
  private readonly s: number = 0;
  private readonly startError: Error | null = null;
  private scanned = 0;
  private passing = false;
  /** The engine's held bytes at its last answer; bytes sent and not answered yet. */
  private held = 0;
  private inFlight = 0;
  private peak = 0;
  private readonly pending: Pending[] = [];
  /** Batches sent and not answered (at most MAX_IN_FLIGHT before the writer waits). */
  private batches = 0;
  /** The writer's callback held while MAX_IN_FLIGHT batches are in flight. */
  private blocked: TransformCallback | null = null;
  /** Chunks of this turn not sent yet (as stream.ts batches them), and their total. */
  private queue: Buffer[] = [];
  private queued = 0;
  private turn: NodeJS.Immediate | undefined = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    def: OffloadDef,
    maxHold: number,
    /** Scan only the first `limit` input bytes; the rest passes unscanned. */
    private readonly limit: number,
    private readonly idleMs: number | undefined,
    private readonly onRedaction: (r: Redaction) => void,
  ) {
    super({ writableHighWaterMark: WRITABLE_HWM });
    let w: ScanWorker | null = null;
    try {
      w = scanWorker();
      this.s = w.open(this, def, maxHold);
    } catch (e) {
      // A worker that cannot start: the first write (or the end) fails closed.
      this.startError = scrubFailed(e);
      w = null;
    }
    this.worker = w;
  }

  get scannedBytes(): number {
    return this.scanned;
  }

  /** Received, not yet emitted: the worker engine's window, the batches in flight, this turn's queue. */
  get heldBytes(): number {
    return this.held + this.inFlight + this.queued;
  }

  get peakHeldBytes(): number {
    return this.peak;
  }

  override _writev(chunks: Array<{ chunk: Buffer | string; encoding: BufferEncoding }>, cb: (error?: Error | null) => void): void {
    for (let i = 0; i < chunks.length - 1; i++) this.enqueue(toBuffer(chunks[i]?.chunk));
    this._write(toBuffer(chunks[chunks.length - 1]?.chunk), 'latin1', cb);
  }

  private enqueue(b: Buffer): void {
    this.queue.push(b);
    this.queued += b.length;
  }

  /**
   * A chunk is queued. The queue is sent when BATCH bytes are queued, when the turn ends with no
   * batch in flight (so nothing waits longer than the current turn while the worker is idle), or
   * when an answer comes back: while the worker scans, the next batch grows (fewer, larger
   * messages when the worker is the slower side). The writer goes on at once unless BATCH bytes
   * are queued and MAX_IN_FLIGHT batches are in flight: then its callback waits for an answer,
   * so the Writable's buffer fills and pauses the upstream. Memory per stream is bounded by
   * (MAX_IN_FLIGHT + 1) batches plus the Writable's buffer.
   */
  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.startError) return cb(this.startError);
    if (this.passing) {
      // Past the scan limit. While the batch that reached it is in flight, what follows waits
      // behind it (the writer too), so the order holds. Chunks _writev queued before this one
      // come first: they are past the limit too, and nothing would send them.
      const q = this.queued > 0 ? this.takeQueue() : null;
      const last = this.pending[this.pending.length - 1];
      if (!last) {
        if (q) for (const c of q) if (c.length > 0) this.push(c);
        return cb(null, chunk);
      }
      if (q) last.rest.push(...q);
      last.rest.push(toBuffer(chunk));
      this.blocked = cb;
      return;
    }
    this.enqueue(toBuffer(chunk));
    if (this.queued < BATCH) {
      if (this.batches === 0) this.turn ??= setImmediate(onTurn, this);
      return cb();
    }
    if (this.batches < MAX_IN_FLIGHT) {
      this.sendQueued();
      return cb();
    }
    this.blocked = cb;
  }

  /** The turn ended: send what it brought, unless a batch is in flight (its answer sends it). */
  endTurn(): void {
    this.turn = undefined;
    if (!this.destroyed && this.batches === 0) this.sendQueued();
  }

  /** Sends everything queued as one batch (the one that reaches the scan limit ends the engine). */
  private sendQueued(): void {
    const n = this.queued;
    const q = this.takeQueue();
    if (n === 0) return;
    const take = Math.min(n, this.limit - this.scanned);
    // One copy into a buffer of its own (never a pooled or shared one), transferred to the worker.
    const buf = Buffer.allocUnsafeSlow(take);
    let at = 0;
    const rest: Buffer[] = [];
    for (const c of q) {
      const k = Math.min(c.length, take - at);
      if (k > 0) at += c.copy(buf, at, 0, k);
      if (k < c.length) rest.push(c.subarray(Math.max(0, k)));
    }
    this.scanned += take;
    this.batches++;
    if (take === n) return this.request({ t: 'write', s: this.s, buf: buf.buffer }, { kind: 'write', bytes: take, cb: null, rest: [] });
    // The batch that reaches the scan limit: the engine ends, the rest passes unscanned after its output.
    this.passing = true;
    this.stopTimer();
    this.request({ t: 'end', s: this.s, buf: buf.buffer }, { kind: 'limit', bytes: take, cb: null, rest });
  }

  /** The queued chunks, leaving the queue empty and the turn's callback cancelled. */
  private takeQueue(): Buffer[] {
    if (this.turn) clearImmediate(this.turn);
    this.turn = undefined;
    const q = this.queue;
    this.queue = [];
    this.queued = 0;
    return q;
  }

  private request(m: ToWorker, p: Pending): void {
    this.inFlight += p.bytes;
    this.pending.push(p);
    (this.worker as ScanWorker).post(m, 'buf' in m ? [m.buf] : undefined);
  }

  /** The worker's answer to the oldest request in flight. */
  answer(m: FromWorker): void {
    const p = this.pending.shift();
    if (!p || this.destroyed) return;
    this.inFlight -= p.bytes;
    if (m.t === 'fail') {
      this.worker?.close(this.s);
      this.destroy(scrubFailed(new Error(m.message)));
      return;
    }
    this.held = m.held;
    this.peak = m.peak;
    if (m.red) for (const r of m.red) this.onRedaction(r);
    if (m.out && m.out.byteLength > 0) this.push(Buffer.from(m.out));
    if (p.kind === 'limit' || p.kind === 'end') this.worker?.close(this.s); // the worker dropped the engine
    for (const c of p.rest) if (c.length > 0) this.push(c);
    if (p.kind === 'write' || p.kind === 'limit') {
      this.batches--;
      if (this.queued > 0) this.sendQueued();
      const cb = this.blocked;
      this.blocked = null;
      cb?.();
    }
    if (p.kind === 'write') this.armTimer();
    p.cb?.();
  }

  private armTimer(): void {
    if (this.idleMs !== undefined && this.held > 0 && !this.passing) {
      if (this.timer) this.timer.refresh();
      else this.timer = setTimeout(onIdle, this.idleMs, this);
    } else this.stopTimer();
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** No answer for idleMs with bytes held: the engine's soft flush (unless a batch is queued or
   * in flight, whose answer arms the timer again). */
  idleFlush(): void {
    this.timer = undefined;
    if (this.destroyed || this.passing || this.pending.length > 0 || this.queued > 0) return;
    this.request({ t: 'soft', s: this.s }, { kind: 'soft', bytes: 0, cb: null, rest: [] });
  }

  override _flush(cb: TransformCallback): void {
    this.stopTimer();
    if (this.startError) return cb(this.startError);
    this.sendQueued();
    if (this.passing) {
      // The end follows the answer that ended the engine, if it is still in flight.
      const last = this.pending[this.pending.length - 1];
      if (!last) return cb();
      last.cb = cb;
      return;
    }
    this.request({ t: 'end', s: this.s, buf: new ArrayBuffer(0) }, { kind: 'end', bytes: 0, cb, rest: [] });
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.stopTimer();
    this.takeQueue();
    this.pending.length = 0;
    this.blocked = null;
    this.worker?.close(this.s);
    cb(err);
  }
}

function toBuffer(c: Buffer | string | undefined): Buffer {
  return typeof c === 'string' ? Buffer.from(c, 'utf8') : (c ?? EMPTY);
}
