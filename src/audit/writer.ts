/**
 * Audit sinks: the hash-chained file log and an in-memory sink for tests.
 *
 * write() is synchronous and cheap: it scrubs, normalises and serialises the record, assigns its
 * `seq` and copies it into the hand-over ring (ring.ts), so the chain order is the order of
 * write() calls. The writer thread adds seq and prev to each record and hashes it in ring order
 * (line.ts chainInto), so the event loop computes no hash. The thread (writer-thread.ts) wakes itself every WRITE_PERIOD_MS while
 * records flow and appends what was published meanwhile; only a record that comes after the
 * thread went idle wakes it (ring.ts). It checks the file and appends with synchronous calls of
 * its own, so a slow or stalled disk never blocks the event loop (docs/benchmarks.md, "Fourth
 * pass: audit", "Fifth pass: audit hand-over" and "Sixth pass").
 * When the ring has no room (the disk is slower than the traffic), records wait here in batches,
 * in order, and go in as the thread frees room: nothing is lost and write() never waits.
 * close() (or flush()) waits for every record written so far to reach the file; call one of them
 * before the process ends (the thread does not keep it alive on its own).
 *
 * If the thread dies, the log reports it (onError: production then refuses traffic) and starts a
 * new one on the same ring, which reads on from where the dead one had got to and skips the
 * records already in the file, so none is lost or written twice. After MAX_RESTARTS deaths in a
 * row with no batch confirmed in between, the log gives up and reports every later record as lost.
 */

import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { TurretError } from '../core/errors.js';
import { chainBody, chainLineBytes, formatChainLine, GENESIS_PREV } from './line.js';
import { JsonOut } from './json-out.js';
import { DONE_BYTES, doneWord, initProgress } from './chain-head.js';
import { chainTail, opened, startThread } from './writer-start.js';
import { normalizeRecord, type AuditRecord } from './record.js';
import { CLOSE, createRing, DEFAULT_RING_BYTES, FLUSH, IDLE, RingWriter, WRITE_PERIOD_MS, type Batch } from './ring.js';
import type { FromThread, ThreadInit } from './writer-thread.js';

export interface AuditSink {
  write(rec: AuditRecord): void;
  close(): Promise<void>;
}

export interface AuditLogOptions {
  path: string;
  /** Rotate before a record would push the file past this size. Default 64 MiB. */
  maxBytes?: number;
  /** Rotated files kept (path.1 … path.N). Default 10. */
  maxFiles?: number;
  /** Applied to every record before it is written (the secret scrubber). */
  scrub?: (rec: AuditRecord) => AuditRecord;
  /**
   * Instead of `scrub`: the scrubbed record's body (line.ts chainBody) in one step, byte for byte
   * chainBody(scrub(rec)) (proxy/record-scrub.ts scrubbedBody: no copy of the record). A throw
   * reduces the record as a throwing `scrub` does.
   */
  body?: (rec: AuditRecord) => string;
  /**
   * Instead of `body`: writes that body's UTF-8 bytes into `out` (proxy/record-scrub.ts
   * scrubbedBodyInto), which the log points at the hand-over ring's free room, so the body is
   * never a string (docs/benchmarks.md, "Thirteenth pass → auditfast2"). A throw reduces the
   * record as a throwing `scrub` does, whatever it had written.
   */
  bodyInto?: (rec: AuditRecord, out: JsonOut) => void;
  /** datasync after each batch of appended lines. Slower; survives power loss. */
  fsync?: boolean;
  /**
   * Called when an append fails (those records are lost; verify shows the gap, close() rejects)
   * or a rotation fails (nothing is lost; the current file keeps growing).
   */
  onError?: (err: Error) => void;
  /** Called when an append succeeds after one failed (writes resumed; readiness, start.ts). */
  onRecover?: () => void;
  /** Size of the hand-over ring in bytes (ring.ts). Default 4 MiB; tests use small ones. */
  ringBytes?: number;
}

export interface AuditLog extends AuditSink {
  readonly path: string;
  /** Resolves once every record written so far is in the file. */
  flush(): Promise<void>;
}

export const DEFAULT_AUDIT_MAX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_AUDIT_MAX_FILES = 10;
/**
 * How long a written record can wait before the writer thread starts appending it: the thread's
 * period (ring.ts). A crash can lose the records of about this long (docs/operations.md).
 */
export const BATCH_DELAY_MS = WRITE_PERIOD_MS;
/** Bytes of lines (bounded as 3 per UTF-16 unit) gathered into one waiting batch when the ring is full. */
const PENDING_BATCH_BYTES = 64 * 1024;
/** Writer-thread deaths in a row, with no batch confirmed in between, after which the log gives up. */
export const MAX_RESTARTS = 3;

/**
 * Scrubs a record. If the scrubber itself throws, the record is reduced to fields that carry no
 * request data rather than written unscrubbed (fail closed) or dropped (the decision must leave a
 * trace).
 */
function prepare(rec: AuditRecord, scrub: ((rec: AuditRecord) => AuditRecord) | undefined): AuditRecord {
  if (scrub === undefined) return rec;
  try {
    return scrub(rec);
  } catch {
    return reduced(rec);
  }
}

function reduced(rec: AuditRecord): AuditRecord {
  return { time: rec.time, event: rec.event, outcome: rec.outcome, agent: rec.agent, reason: 'audit scrubber failed; record reduced' };
}

/** Writes the body of `rec` scrubbed (AuditLogOptions.bodyInto, .body or .scrub) into `out`, reduced when the scrubber fails. */
function bodyInto(rec: AuditRecord, o: AuditLogOptions, out: JsonOut): void {
  try {
    if (o.bodyInto !== undefined) o.bodyInto(rec, out);
    else out.text(o.body === undefined ? chainBody(prepare(rec, o.scrub)) : o.body(rec));
  } catch {
    out.restart();
    out.text(chainBody(reduced(rec)));
  }
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new TurretError('internal_error', `audit log ${name} must be a positive integer`);
  return v;
}

/**
 * The writer thread of an open file log, so a test can stop it as a crash would
 * (test/unit/audit-writer-thread.test.ts); null once the log closed or gave up.
 */
const threads = new WeakMap<AuditLog, () => Worker | null>();
export function writerThreadOf(log: AuditLog): Worker | null {
  return threads.get(log)?.() ?? null;
}

/**
 * Resolves once the log's writer thread has found nothing to write for IDLE_ROUNDS periods and sleeps
 * until a record wakes it (ring.ts idle()), so a test can write after an idle spell
 * (test/unit/audit-writer-period.test.ts).
 */
const rings = new WeakMap<AuditLog, SharedArrayBuffer>();
export async function writerIdle(log: AuditLog): Promise<void> {
  const sab = rings.get(log);
  if (sab === undefined) return;
  const ctl = new Int32Array(sab, 0, IDLE + 1);
  // Atomics.waitAsync is in Node 20 but not in this TypeScript lib.
  const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { value: Promise<string> | string } }).waitAsync;
  for (let i = 0; i < 1000 && Atomics.load(ctl, IDLE) !== 1; i++) await waitAsync(ctl, IDLE, 0).value;
}

/**
 * Waits for `p` with the process kept alive: writer threads are unref'd (an idle log must not hold
 * a process open), so a wait for one needs a handle of its own. A timer, not Worker.ref(): the
 * thread waited on may be replaced meanwhile (died()).
 */
async function keptAlive<T>(p: Promise<T>): Promise<T> {
  const keep = setInterval(() => undefined, 1 << 30);
  try {
    return await p;
  } finally {
    clearInterval(keep);
  }
}

export async function openAuditLog(o: AuditLogOptions): Promise<AuditLog> {
  const path = o.path;
  const maxBytes = positiveInt('maxBytes', o.maxBytes, DEFAULT_AUDIT_MAX_BYTES);
  const maxFiles = positiveInt('maxFiles', o.maxFiles, DEFAULT_AUDIT_MAX_FILES);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tail = await chainTail(path);
  let seq = tail.seq;
  // The highest seq the writer thread is done with (written, or lost and reported): read here
  // when a batch leaves, so confirmed batches are let go without a message per batch. Then the
  // chain's head, the hash the next record takes as prev (the thread keeps it up to date).
  const doneBuf = new SharedArrayBuffer(DONE_BYTES);
  const done = doneWord(doneBuf);
  initProgress(doneBuf, tail);
  const ringBuf = createRing(positiveInt('ringBytes', o.ringBytes, DEFAULT_RING_BYTES));
  const ring = new RingWriter(ringBuf);
  const init = (resume: boolean): ThreadInit => ({ path, maxBytes, maxFiles, fsync: o.fsync === true, done: doneBuf, ring: ringBuf, resume });

  // Records written after the log gave up on its thread: reported lost together (reportLost()).
  let lostFrom = 0;
  let timer: NodeJS.Timeout | null = null;
  // Records the ring had no room for, in batches, oldest first; they go in before any later one.
  let pending: Batch[] = [];
  // flush() callers: each waits until the thread is done with `seq`.
  let waiters: Array<{ seq: number; resolve: () => void }> = [];
  let flushIds = 0;
  let closed = false;
  let firstError: Error | null = null;
  let confirmed = seq;
  let restarts = 0;
  let thread: Worker | null = null;
  // Where write() puts a body (json-out.ts), and whether it is putting one there now.
  const scratch = new JsonOut();
  let writing = false;

  function fail(err: Error): void {
    firstError ??= err;
    o.onError?.(err);
  }

  function confirm(): void {
    const d = Number(Atomics.load(done, 0));
    if (d > confirmed) {
      confirmed = d;
      restarts = 0;
    }
  }

  /** Asks the thread to answer `flushed` once it is done with everything published so far. */
  function askFlush(): void {
    if (thread !== null && waiters.length > 0) ring.signal(FLUSH, ++flushIds);
  }

  /** Moves waiting batches into the ring while it has room; asks to hear of room when it has none. */
  function drain(): void {
    let moved = false;
    while (pending.length > 0 && thread !== null) {
      const b = pending[0]!;
      if (ring.publish(b.lines, b.bytes, b.first, b.last, true)) {
        pending.shift();
        moved = true;
      } else if (!ring.wantSpace(b.bytes)) break;
    }
    if (moved) askFlush();
  }

  /** The thread is done with more: let go the flush() callers it satisfied, fill the ring again. */
  function progress(): void {
    confirm();
    if (waiters.length > 0) {
      const left = waiters.filter((w) => w.seq > confirmed);
      for (const w of waiters) if (w.seq <= confirmed) w.resolve();
      waiters = left;
    }
    drain();
  }

  function attach(w: Worker): void {
    let why: string | null = null;
    w.on('message', (m: FromThread) => {
      if (m.t === 'problem') o.onError?.(new Error(m.message));
      // The seqs go into the message: the operator learns which records verify will show missing.
      else if (m.t === 'failed') fail(Object.assign(new Error(`${m.message}; records ${m.first} to ${m.last} are lost`), { code: m.code }));
      else if (m.t === 'recover') o.onRecover?.();
      else if (m.t === 'flushed' || m.t === 'space') progress();
      else if (m.t === 'fatal') why = m.message;
    });
    w.on('error', (e) => (why = e.message));
    w.on('exit', (code) => {
      if (w === thread) died(why ?? `exit code ${code}`);
    });
  }

  /** No more threads: what was unconfirmed is reported lost, and so is every later record (handOver()). */
  function giveUp(what: string): void {
    fail(new Error(`audit writer thread for ${path} ${what}; records from seq ${confirmed + 1} on are lost`));
    pending = [];
    for (const w of waiters) w.resolve();
    waiters = [];
  }

  /** The thread died without being asked to: report, and start another, which reads on in the ring. */
  function died(why: string): void {
    thread = null;
    confirm();
    restarts += 1;
    if (restarts > MAX_RESTARTS) return giveUp(`stopped (${why}) ${restarts} times in a row`);
    fail(new Error(`audit writer thread for ${path} stopped (${why}); started another, which appends the records it had not written`));
    let w: Worker;
    try {
      w = startThread(init(true));
    } catch (e) {
      // No thread can be started (out of memory, descriptors): this is called from an 'exit'
      // event, where a throw would end the process.
      return giveUp(`could not be started again (${e instanceof Error ? e.message : String(e)})`);
    }
    thread = w;
    attach(w);
    w.unref();
    // The dead thread may have taken the ask for room with it.
    drain();
  }

  /** Reports the records written since the log gave up on its thread, as one range. */
  function reportLost(): void {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (lostFrom === 0) return;
    fail(new Error(`audit writer thread for ${path} is not running; records ${lostFrom} to ${seq} are lost`));
    lostFrom = 0;
  }

  /**
   * Hands record `s` (its body, line.ts chainBody, written in `out`) over: published where it was
   * written when room() put it in the ring, else copied in, when nothing waits before it and there
   * is room (the thread comes for it within one period), else after the batches that wait for
   * room. Each body goes in with a "\n" after it. `nested`: written while another record was
   * being written (its scrubber wrote one), whose body may be in the ring's free room: this one
   * waits in `pending` and goes in after that one.
   */
  function handOver(out: JsonOut, s: number, nested: boolean): void {
    if (thread === null) {
      if (lostFrom === 0) lostFrom = s;
      timer ??= setTimeout(reportLost, BATCH_DELAY_MS);
      return;
    }
    // The limit is on the chained line the thread makes of it, as when the event loop chained it.
    const lineBytes = chainLineBytes(out.length, s);
    if (lineBytes > ring.maxText) {
      // An empty entry (no line, no "\n") keeps its seq, so the thread's done counter still passes it.
      enqueue(null, 0, s, nested);
      fail(new Error(`audit record seq ${s} is ${lineBytes} bytes, more than the hand-over ring takes (${ring.maxText}); it is lost`));
      return;
    }
    const bytes = out.length + 1;
    if (!nested && pending.length === 0 && (ring.commit(out, s, s) || ring.publish(out.bytes(), bytes, s, s, true))) return;
    enqueue(out.toString(), bytes, s, nested);
  }

  /** Record `s` (`line` of `bytes` UTF-8 bytes with its "\n"; null: lost) into the ring, or after what waits. */
  function enqueue(line: string | null, bytes: number, s: number, nested: boolean): void {
    if (!nested && pending.length === 0 && ring.publish(line ?? [], bytes, s, s, true)) return;
    const last = pending.at(-1);
    if (last !== undefined && line !== null && last.bytes + bytes <= Math.min(PENDING_BATCH_BYTES, ring.maxText) && last.lines.length > 0) {
      last.lines.push(line);
      last.bytes += bytes;
      last.last = s;
    } else pending.push({ first: s, last: s, lines: line === null ? [] : [line], bytes });
    if (nested) return;
    confirm();
    drain();
  }

  const first = startThread(init(false));
  await opened(first, path);
  thread = first;
  attach(first);
  first.unref();

  async function flush(): Promise<void> {
    reportLost();
    if (thread === null) return;
    const target = seq;
    await keptAlive(
      new Promise<void>((resolve) => {
        waiters.push({ seq: target, resolve });
        askFlush();
      }),
    );
  }

  const log: AuditLog = {
    path,
    write(rec: AuditRecord): void {
      if (closed) throw new TurretError('internal_error', 'audit log is closed');
      const nested = writing;
      // The body goes straight into the ring's free room when it can be published there.
      const out = nested ? new JsonOut() : scratch;
      if (!nested && thread !== null && pending.length === 0) ring.room(out);
      else out.reset();
      writing = true;
      try {
        bodyInto(rec, o, out);
      } finally {
        writing = nested;
      }
      seq += 1;
      // A crash can lose the records not yet appended: those of about the last BATCH_DELAY_MS,
      // plus more only while the disk is slower than the traffic (docs/operations.md).
      handOver(out, seq, nested);
    },
    flush,
    async close(): Promise<void> {
      if (closed) return flush();
      closed = true;
      await flush();
      const w = thread;
      thread = null;
      if (w !== null) {
        await keptAlive(
          new Promise<void>((resolve) => {
            w.once('exit', () => resolve());
            ring.signal(CLOSE, 1);
          }),
        );
      }
      if (firstError !== null) throw firstError;
    },
  };
  threads.set(log, () => thread);
  rings.set(log, ringBuf);
  return log;
}

export interface MemorySink extends AuditSink {
  /** Records as a file sink would write them (scrubbed and normalised), without seq/prev/hash. */
  records: AuditRecord[];
  /** The chained lines a file sink would have written. */
  lines: string[];
}

/** An in-memory sink for tests. Same scrubbing, normalisation and chaining as the file log. */
export function memorySink(o: { scrub?: (rec: AuditRecord) => AuditRecord } = {}): MemorySink {
  const records: AuditRecord[] = [];
  const lines: string[] = [];
  let prev = GENESIS_PREV;
  return {
    records,
    lines,
    write(rec: AuditRecord): void {
      const r = prepare(rec, o.scrub);
      const f = formatChainLine(r, lines.length + 1, prev);
      prev = f.hash;
      records.push(normalizeRecord(r));
      lines.push(f.line);
    },
    async close(): Promise<void> {},
  };
}
