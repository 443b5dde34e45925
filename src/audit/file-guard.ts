/**
 * Is the open audit file still the one at its path? A file deleted (or its directory removed)
 * or replaced under a running writer would take every later record with it, unseen: appends to
 * an unlinked file succeed. The writer checks before each batch (one fstat and one stat) and, on
 * a mismatch, reports a write failure and reopens the path (writer.ts).
 */
import { stat, type FileHandle } from 'node:fs/promises';

/** Why the open file is no longer the audit log at `path`, or null when it still is. */
export async function fileProblem(fh: FileHandle, path: string): Promise<string | null> {
  const open = await fh.stat();
  if (open.nlink === 0) return `audit log ${path} was deleted while open`;
  try {
    const now = await stat(path);
    if (now.ino !== open.ino || now.dev !== open.dev) return `audit log ${path} was replaced by another file while open`;
  } catch (e) {
    return `audit log ${path} is gone (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  return null;
}
