/**
 * `turret audit tail [--follow] [--agent A] [--decision D] FILE`: prints the log's lines as
 * written (so they can still be verified or piped to jq), optionally filtered, and with
 * `follow` keeps printing new lines until the signal aborts.
 *
 * Following polls instead of using fs.watch: fs.watch misses events on network filesystems and
 * in some containers, and a poll every 200 ms costs nothing. Rotation is detected by the path
 * pointing at a different inode: the old file is read to its end, then the new one from its
 * start. The chain's `seq` then says what happened in between: a jump means the poll slept through
 * several rotations, and the missing records are read from path.1, path.2 … before going on. So
 * no line is lost or printed twice (unlike `tail -F`, which skips files rotated between polls).
 */

import { open, stat, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { TurretError } from '../core/errors.js';
import { AUDIT_OUTCOMES, isAuditOutcome } from './record.js';
import { readLinesOf } from './read-lines.js';
import { parseChainLine } from './line.js';

export interface TailOptions {
  path: string;
  follow: boolean;
  /** Only records whose `agent` is exactly this. */
  agent?: string;
  /** Only records whose `outcome` is this (denied, allowed, completed, failed, aborted). */
  decision?: string;
  /** Receives each line without its newline. */
  out: (line: string) => void;
  signal?: AbortSignal;
  /** Poll interval while following. Default 200 ms. */
  pollMs?: number;
  /** Called after each pass over the file (so a caller can wait for a pass instead of a time). */
  onPass?: () => void;
}

/** Parsed once per line: its chain seq (if any) and whether it passes the filters. */
type Judge = (line: string) => { seq: number | null; show: boolean };

function makeJudge(o: TailOptions): Judge {
  const { agent, decision } = o;
  if (decision !== undefined && !isAuditOutcome(decision)) {
    throw new TurretError('bad_request', `unknown decision "${decision}"; use one of ${AUDIT_OUTCOMES.join(', ')}`);
  }
  const filtered = agent !== undefined || decision !== undefined;
  return (line) => {
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      return { seq: null, show: !filtered }; // a damaged line has no trustworthy agent or outcome
    }
    if (rec === null || typeof rec !== 'object') return { seq: null, show: !filtered };
    const r = rec as { seq?: unknown; agent?: unknown; outcome?: unknown };
    const seq = typeof r.seq === 'number' ? r.seq : null;
    const show = (agent === undefined || r.agent === agent) && (decision === undefined || r.outcome === decision);
    return { seq, show };
  };
}

async function openOrNull(path: string): Promise<FileHandle | null> {
  try {
    return await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Sleeps; false when the signal aborted. */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted === true) return false;
  try {
    await sleep(ms, undefined, signal === undefined ? undefined : { signal });
    return true;
  } catch {
    return false;
  }
}

/**
 * Handles on the rotated files that may hold records after `after`, oldest first (path.1 is the
 * newest). Opened before reading so a rename by the writer mid-scan cannot swap a file under us;
 * renames only move files to higher numbers, so a scan can see a file twice (the seq check absorbs
 * that) but not miss one, except at the one-name hole a rotation leaves while it renames: so a
 * missing name ends the scan only when the next one is missing too.
 */
async function rotatedSince(path: string, after: number): Promise<FileHandle[]> {
  const found: FileHandle[] = [];
  let misses = 0;
  for (let i = 1; i <= 1000 && misses < 2; i++) {
    const fh = await openOrNull(`${path}.${i}`);
    if (fh === null) {
      misses += 1;
      continue;
    }
    misses = 0;
    found.unshift(fh);
    let first: number | null = null;
    for await (const l of readLinesOf(fh)) {
      const p = parseChainLine(l.line);
      first = p.ok ? p.seq : null;
      break;
    }
    if (first === null || first <= after) break;
  }
  return found;
}

export async function tailAudit(o: TailOptions): Promise<void> {
  const judge = makeJudge(o);
  const pollMs = o.pollMs ?? 200;
  const aborted = (): boolean => o.signal?.aborted === true;

  let fh = await openOrNull(o.path);
  if (fh === null && !o.follow) await open(o.path, 'r'); // rethrows ENOENT for the caller

  let pos = 0;
  let rest: Buffer = Buffer.alloc(0);
  let lastSeq = 0;
  const chunk = Buffer.alloc(64 * 1024);

  /** Prints the records lastSeq < seq < upTo from rotated files: the ones the poll slept through. */
  const fillGap = async (upTo: number): Promise<void> => {
    // A second look when the writer was mid-rotation; a gap that stays is a real one (verify says why).
    for (let attempt = 0; attempt < 3 && lastSeq < upTo - 1; attempt++) {
      if (attempt > 0 && !(await pause(10, o.signal))) return;
      const handles = await rotatedSince(o.path, lastSeq);
      try {
        for (const h of handles) {
          for await (const l of readLinesOf(h)) {
            const line = l.line.toString('utf8');
            const { seq, show } = judge(line);
            if (seq === null || seq <= lastSeq || seq >= upTo) continue;
            lastSeq = seq;
            if (show) o.out(line);
          }
        }
      } finally {
        await Promise.all(handles.map((h) => h.close()));
      }
    }
  };

  const handle = async (line: string): Promise<void> => {
    if (line.length === 0) return;
    const { seq, show } = judge(line);
    if (seq !== null) {
      if (seq <= lastSeq && o.follow) return; // already printed from a rotated file
      if (o.follow && lastSeq > 0 && seq > lastSeq + 1) await fillGap(seq);
      lastSeq = Math.max(lastSeq, seq);
    }
    if (show) o.out(line);
  };

  /** Handles every complete line from pos to the current end of h; keeps a partial line in `rest`. */
  const readAvailable = async (h: FileHandle): Promise<void> => {
    for (;;) {
      if (aborted()) return;
      const { bytesRead } = await h.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      let buf = rest.length === 0 ? Buffer.from(chunk.subarray(0, bytesRead)) : Buffer.concat([rest, chunk.subarray(0, bytesRead)]);
      let nl: number;
      while ((nl = buf.indexOf(0x0a)) !== -1) {
        await handle(buf.subarray(0, nl).toString('utf8'));
        buf = buf.subarray(nl + 1);
      }
      rest = Buffer.from(buf);
    }
  };

  const reset = (): void => {
    pos = 0;
    rest = Buffer.alloc(0);
  };

  try {
    for (;;) {
      if (fh !== null) await readAvailable(fh);
      o.onPass?.();
      if (!o.follow || !(await pause(pollMs, o.signal))) return;
      const onPath = await stat(o.path).catch(() => null);
      const current = fh === null ? null : await fh.stat();
      const replaced = onPath === null || current === null || onPath.ino !== current.ino || onPath.dev !== current.dev;
      if (replaced) {
        if (fh !== null) {
          await readAvailable(fh); // the writer may have appended to the old file before renaming it
          await fh.close();
        }
        // null when renamed away and the new file is not there yet: look again on the next poll.
        // Files rotated in between are picked up by fillGap when the new file's first seq jumps.
        fh = onPath === null ? null : await openOrNull(o.path);
        reset();
      } else if (current.size < pos) {
        // Truncated in place (copytruncate-style rotation): start over.
        reset();
      }
    }
  } finally {
    await fh?.close();
  }
}
