/**
 * The audit file as the writer thread (writer-thread.ts) sees it: synchronous appends of whole
 * batches of lines, the file guard before each batch, size rotation between records, and a
 * failed append cut back to the last complete record. Synchronous on purpose: it runs on its own
 * thread, so a slow or stalled disk stops only that thread, never the event loop, and a batch
 * costs one stat and one write system call with no thread-pool round trips (docs/benchmarks.md,
 * "Fourth pass: audit").
 *
 * Rotation is by size and happens between records, so a record is never split across files:
 * path → path.1 → path.2 … path.<maxFiles>; the oldest is overwritten. The chain continues
 * across files (the first line of the new file has prev = hash of the last line of the old one).
 */
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileProblem, type FileIdentity } from './file-guard.js';

export interface AppendFileOptions {
  path: string;
  maxBytes: number;
  maxFiles: number;
  fsync: boolean;
  /**
   * A problem that lost nothing: the file was gone or replaced and is reopened at its path
   * (`reopened`), or a rotation failed and the current file keeps growing.
   */
  onProblem: (message: string, reopened: boolean) => void;
}

export class AppendFile {
  private fd = -1;
  private size = 0;
  private ident: FileIdentity = { dev: 0, ino: 0 };
  // Raised after a failed rotation so the next attempt comes only after another maxBytes, not per line.
  private limit: number;
  // A failed append could not be cut back; the next append cuts first.
  private torn = false;

  constructor(private readonly o: AppendFileOptions) {
    this.limit = o.maxBytes;
    // A thread started after one died may find the directory removed meanwhile (the dead one would
    // have recreated it at its next batch, append()): recreate it too rather than fail every restart.
    mkdirSync(dirname(o.path), { recursive: true, mode: 0o700 });
    this.reopen();
  }

  private reopen(): void {
    this.fd = openSync(this.o.path, 'a', 0o600);
    const st = fstatSync(this.fd);
    this.size = st.size;
    this.ident = { dev: st.dev, ino: st.ino };
  }

  /**
   * Appends `lines` (whole lines, each ending in "\n"). Throws when the append failed: those
   * lines are lost (verify shows the gap) and the file still ends with a complete line.
   */
  append(lines: Buffer): void {
    if (this.torn && this.fd !== -1) {
      ftruncateSync(this.fd, this.size);
      this.torn = false;
    }
    // fd -1: a reopen (after the guard or a rotation) failed; try again now.
    const problem = this.fd === -1 ? `audit log ${this.o.path} could not be reopened` : fileProblem(this.ident, this.o.path);
    if (problem !== null) {
      // Reopen at the path (recreating its directory) so later records land where operators look;
      // the failure is still reported: production refuses traffic after any audit failure.
      this.closeFd();
      mkdirSync(dirname(this.o.path), { recursive: true, mode: 0o700 });
      this.reopen();
      this.o.onProblem(`${problem}; reopened it`, true);
    }
    if (this.size + lines.length <= this.limit) {
      this.writeOut(lines);
    } else {
      // Past the size limit somewhere in this batch: rotate before the record that would cross it.
      let from = 0;
      let start = 0;
      while (start < lines.length) {
        const end = lines.indexOf(0x0a, start) + 1 || lines.length;
        const pending = start - from;
        if (this.size + pending > 0 && this.size + (end - from) > this.limit) {
          this.writeOut(lines.subarray(from, start));
          this.rotate();
          from = start;
        }
        start = end;
      }
      this.writeOut(lines.subarray(from));
    }
    if (this.o.fsync) fdatasyncSync(this.fd);
  }

  private writeOut(buf: Buffer): void {
    if (buf.length === 0) return;
    try {
      for (let off = 0; off < buf.length;) off += writeSync(this.fd, buf, off, buf.length - off);
    } catch (e) {
      // A partial append (disk full) leaves half a line that a later record would be glued to:
      // cut the file back to its last complete record. A restart then finds a complete last line.
      try {
        ftruncateSync(this.fd, this.size);
      } catch {
        this.torn = true;
      }
      throw e;
    }
    this.size += buf.length;
  }

  /**
   * A failed rename (permissions, a directory in the way) is reported but not fatal: the log keeps
   * growing in the current file, because losing records is worse than missing a rotation.
   */
  private rotate(): void {
    this.closeFd();
    try {
      for (let i = this.o.maxFiles - 1; i >= 1; i--) {
        try {
          renameSync(`${this.o.path}.${i}`, `${this.o.path}.${i + 1}`);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      }
      renameSync(this.o.path, `${this.o.path}.1`);
      this.limit = this.o.maxBytes;
    } catch (e) {
      this.o.onProblem(e instanceof Error ? e.message : String(e), false);
    }
    this.reopen();
    if (this.size > 0) this.limit = this.size + this.o.maxBytes;
  }

  /** Closes the file once; the number is forgotten so a later close never hits a reused descriptor. */
  closeFd(): void {
    const fd = this.fd;
    this.fd = -1;
    if (fd === -1) return;
    try {
      closeSync(fd);
    } catch {
      // already unusable; a reopen is what matters
    }
  }
}
