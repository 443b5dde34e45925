/**
 * `turret audit tail [--follow] [--agent A] [--decision D] FILE`: prints the log's lines as
 * written (so they can still be verified or piped to jq), optionally filtered, and with
 * `follow` keeps printing new lines until the signal aborts.
 *
 * Following polls instead of using fs.watch: fs.watch misses events on network filesystems and
 * in some containers, and a poll every 200 ms costs nothing. Rotation is detected by the path
 * pointing at a different inode: the old file is read to its end, then the new one from its start,
 * so no line is lost or doubled when the writer renames path → path.1.
 */

import { open, stat, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { TurretError } from '../core/errors.js';
import { AUDIT_OUTCOMES, isAuditOutcome } from './record.js';

export interface TailOptions {
  path: string;
  follow: boolean;
  /** Only records whose `agent` is exactly this. */
  agent?: string;
  /** Only records whose `outcome` is this (attempt, denied, allowed, completed, failed). */
  decision?: string;
  /** Receives each line without its newline. */
  out: (line: string) => void;
  signal?: AbortSignal;
  /** Poll interval while following. Default 200 ms. */
  pollMs?: number;
}

type Filter = (line: string) => boolean;

function makeFilter(o: TailOptions): Filter {
  const { agent, decision } = o;
  if (decision !== undefined && !isAuditOutcome(decision)) {
    throw new TurretError('bad_request', `unknown decision "${decision}"; use one of ${AUDIT_OUTCOMES.join(', ')}`);
  }
  if (agent === undefined && decision === undefined) return () => true;
  return (line) => {
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      return false; // a damaged line has no trustworthy agent or outcome
    }
    if (rec === null || typeof rec !== 'object') return false;
    const r = rec as { agent?: unknown; outcome?: unknown };
    return (agent === undefined || r.agent === agent) && (decision === undefined || r.outcome === decision);
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

export async function tailAudit(o: TailOptions): Promise<void> {
  const filter = makeFilter(o);
  const pollMs = o.pollMs ?? 200;
  const aborted = (): boolean => o.signal?.aborted === true;

  let fh = await openOrNull(o.path);
  if (fh === null && !o.follow) await open(o.path, 'r'); // rethrows ENOENT for the caller

  let pos = 0;
  let rest: Buffer = Buffer.alloc(0);
  const chunk = Buffer.alloc(64 * 1024);

  /** Emits every complete line from pos to the current end of fh; keeps a partial line in `rest`. */
  const readAvailable = async (h: FileHandle): Promise<void> => {
    for (;;) {
      if (aborted()) return;
      const { bytesRead } = await h.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      let buf = rest.length === 0 ? chunk.subarray(0, bytesRead) : Buffer.concat([rest, chunk.subarray(0, bytesRead)]);
      let nl: number;
      while ((nl = buf.indexOf(0x0a)) !== -1) {
        const line = buf.subarray(0, nl).toString('utf8');
        buf = buf.subarray(nl + 1);
        if (line.length > 0 && filter(line)) o.out(line);
      }
      rest = Buffer.from(buf);
    }
  };

  try {
    for (;;) {
      if (fh !== null) await readAvailable(fh);
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
        fh = onPath === null ? null : await openOrNull(o.path);
        pos = 0;
        rest = Buffer.alloc(0);
      } else if (current.size < pos) {
        // Truncated in place (copytruncate-style rotation): start over.
        pos = 0;
        rest = Buffer.alloc(0);
      }
    }
  } finally {
    await fh?.close();
  }
}
