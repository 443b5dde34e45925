/**
 * Is the open audit file still the one at its path? A file deleted (or its directory removed)
 * or replaced under a running writer would take every later record with it, unseen: appends to
 * an unlinked file succeed. The writer thread checks before each batch and, on a mismatch,
 * reports a write failure and reopens the path (append-file.ts).
 *
 * One stat of the path, compared with the identity the file had when it was opened: while the
 * writer holds the file open its inode cannot be freed, so no other file can carry the same
 * (dev, ino) — a deleted file shows as a missing path (or another inode), a replaced one as
 * another inode. No fstat is needed per batch. Synchronous: it runs on the writer thread
 * (writer-thread.ts), never on the event loop.
 */
import { statSync } from 'node:fs';

/** The identity of the open audit file, taken from its fstat when it was opened. */
export interface FileIdentity {
  dev: number;
  ino: number;
}

/** Why the open file is no longer the audit log at `path`, or null when it still is. */
export function fileProblem(open: FileIdentity, path: string): string | null {
  try {
    const now = statSync(path);
    if (now.ino !== open.ino || now.dev !== open.dev) return `audit log ${path} was deleted or replaced by another file while open`;
  } catch (e) {
    return `audit log ${path} is gone (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  return null;
}
