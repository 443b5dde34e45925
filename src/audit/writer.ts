/**
 * Audit sinks: the hash-chained file log and an in-memory sink for tests.
 *
 * write() is synchronous and cheap: it scrubs, normalises, assigns `seq`, hashes (one small
 * sha256) and queues the line. One background loop appends queued lines in order, so a slow disk
 * never blocks the event loop per record and the chain order is the order of write() calls.
 * A batch starts BATCH_DELAY_MS after its first record, so busy periods append many lines per
 * file check and write. close() (or flush()) waits for the queue to reach the file.
 *
 * Rotation is by size and happens between records, so a record is never split across files:
 * path → path.1 → path.2 … path.<maxFiles>; the oldest is overwritten. The chain continues
 * across files (the first line of the new file has prev = hash of the last line of the old one).
 */

import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TurretError } from '../core/errors.js';
import { formatChainLine, GENESIS_PREV, parseChainLine } from './line.js';
import { fileProblem, type FileIdentity } from './file-guard.js';
import { readLastLine } from './read-lines.js';
import { normalizeRecord, type AuditRecord } from './record.js';

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
  /** datasync after each batch of appended lines. Slower; survives power loss. */
  fsync?: boolean;
  /**
   * Called when an append fails (those records are lost; verify shows the gap, close() rejects)
   * or a rotation fails (nothing is lost; the current file keeps growing).
   */
  onError?: (err: Error) => void;
  /** Called when an append succeeds after one failed (writes resumed; readiness, start.ts). */
  onRecover?: () => void;
}

export interface AuditLog extends AuditSink {
  readonly path: string;
  /** Resolves once every record written so far is in the file. */
  flush(): Promise<void>;
}

export const DEFAULT_AUDIT_MAX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_AUDIT_MAX_FILES = 10;
/** How long the first queued record waits for more before a batch is appended (see kick()). */
export const BATCH_DELAY_MS = 5;

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
    return { time: rec.time, event: rec.event, outcome: rec.outcome, agent: rec.agent, reason: 'audit scrubber failed; record reduced' };
  }
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new TurretError('internal_error', `audit log ${name} must be a positive integer`);
  return v;
}

/** Where the chain stands in an existing log: the last line of path, or of path.1 after a rotation that crashed. */
async function chainTail(path: string): Promise<{ seq: number; hash: string }> {
  for (const file of [path, `${path}.1`]) {
    const last = await readLastLine(file);
    if (last === null) continue;
    const fix = `run "turret audit verify ${file}"; then move the file aside or remove its damaged last line`;
    if (!last.terminated) throw new TurretError('internal_error', `audit log ${file} ends with an incomplete line; ${fix}`);
    const parsed = parseChainLine(last.line);
    if (!parsed.ok) throw new TurretError('internal_error', `audit log ${file} last line is malformed (${parsed.detail}); ${fix}`);
    if (!parsed.intact) throw new TurretError('internal_error', `audit log ${file} last line does not match its hash; ${fix}`);
    return { seq: parsed.seq, hash: parsed.hash };
  }
  return { seq: 0, hash: GENESIS_PREV };
}

export async function openAuditLog(o: AuditLogOptions): Promise<AuditLog> {
  const path = o.path;
  const maxBytes = positiveInt('maxBytes', o.maxBytes, DEFAULT_AUDIT_MAX_BYTES);
  const maxFiles = positiveInt('maxFiles', o.maxFiles, DEFAULT_AUDIT_MAX_FILES);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tail = await chainTail(path);
  let seq = tail.seq;
  let prev = tail.hash;
  let fh!: FileHandle;
  // size and identity (for the file guard) of the open file, set by reopen().
  let size = 0;
  let ident: FileIdentity = { dev: 0, ino: 0 };
  async function reopen(): Promise<void> {
    fh = await open(path, 'a', 0o600);
    const st = await fh.stat();
    size = st.size;
    ident = { dev: st.dev, ino: st.ino };
  }
  await reopen();

  let queue: string[] = [];
  let running: Promise<void> | null = null;
  let closed = false;
  let firstError: Error | null = null;
  // The last append failed (or found the file gone); the next success calls onRecover.
  let failing = false;
  // A failed append could not be cut back; the next append cuts first.
  let torn = false;
  // Raised after a failed rotation so the next attempt comes only after another maxBytes, not per line.
  let limit = maxBytes;

  /**
   * A failed rename (permissions, a directory in the way) is reported but not fatal: the log keeps
   * growing in the current file, because losing records is worse than missing a rotation.
   */
  async function rotate(): Promise<void> {
    await fh.close();
    try {
      for (let i = maxFiles - 1; i >= 1; i--) {
        await rename(`${path}.${i}`, `${path}.${i + 1}`).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e;
        });
      }
      await rename(path, `${path}.1`);
      limit = maxBytes;
    } catch (e) {
      o.onError?.(e instanceof Error ? e : new Error(String(e)));
    }
    await reopen();
    if (size > 0) limit = size + maxBytes;
  }

  async function append(lines: string[]): Promise<void> {
    if (torn) {
      await fh.truncate(size);
      torn = false;
    }
    const problem = await fileProblem(ident, path).catch((e: Error) => e.message);
    if (problem !== null) {
      // Reopen at the path (recreating its directory) so later records land where operators look;
      // the failure is still reported: production refuses traffic after any audit failure.
      await fh.close().catch(() => undefined);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await reopen();
      o.onError?.(new Error(`${problem}; reopened it`));
      failing = true;
    }
    let chunk: Buffer[] = [];
    let chunkBytes = 0;
    const writeOut = async (): Promise<void> => {
      if (chunk.length === 0) return;
      try {
        await fh.appendFile(Buffer.concat(chunk, chunkBytes));
      } catch (e) {
        // A partial append (disk full) leaves half a line that a later record would be glued
        // to: cut the file back to its last complete record. Those records are lost; verify
        // shows the gap with its bounds, and a restart finds a complete last line.
        await fh.truncate(size).catch(() => (torn = true));
        throw e;
      }
      size += chunkBytes;
      chunk = [];
      chunkBytes = 0;
    };
    for (const line of lines) {
      const b = Buffer.from(line, 'utf8');
      if (size + chunkBytes > 0 && size + chunkBytes + b.length > limit) {
        await writeOut();
        await rotate();
      }
      chunk.push(b);
      chunkBytes += b.length;
    }
    await writeOut();
    if (o.fsync === true) await fh.datasync();
  }

  // One batch per call: records queued while it is being appended wait for their own
  // BATCH_DELAY_MS window (kick() again) instead of following at once in batches of one or two,
  // which under steady traffic made nearly every batch that small (docs/benchmarks.md, "Third pass").
  async function drain(): Promise<void> {
    if (queue.length === 0) return;
    const lines = queue;
    queue = [];
    try {
      await append(lines);
      if (failing) {
        failing = false;
        o.onRecover?.();
      }
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      firstError ??= err;
      failing = true;
      o.onError?.(err);
    }
  }

  // A batch's file check (one stat) and append are thread-pool round trips costing tens of µs
  // of process CPU each, whatever the batch holds (docs/benchmarks.md, "Hot path"): the
  // first record of a batch waits BATCH_DELAY_MS for the ones behind it. A crash can lose the
  // records queued and not yet appended: up to BATCH_DELAY_MS of them plus the batch in flight.
  function kick(): void {
    if (running !== null) return;
    running = new Promise<void>((resolve) => setTimeout(resolve, BATCH_DELAY_MS)).then(drain).finally(() => {
      running = null;
      // Lines queued while the last append was finishing.
      if (queue.length > 0) kick();
    });
  }

  async function flush(): Promise<void> {
    while (running !== null) await running;
  }

  return {
    path,
    write(rec: AuditRecord): void {
      if (closed) throw new TurretError('internal_error', 'audit log is closed');
      const f = formatChainLine(prepare(rec, o.scrub), seq + 1, prev);
      seq += 1;
      prev = f.hash;
      queue.push(f.line);
      kick();
    },
    flush,
    async close(): Promise<void> {
      if (closed) return flush();
      closed = true;
      await flush();
      await fh.close();
      if (firstError !== null) throw firstError;
    },
  };
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
