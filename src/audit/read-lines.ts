/**
 * Byte-exact line reading for the audit log. Lines are split on "\n" only and returned as
 * Buffers: the chain hash covers raw bytes, so decoding and re-encoding (or readline's splitting
 * on "\r") would make a tampered line look different from what is on disk.
 */

import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

export interface RawLine {
  line: Buffer;
  /** 1-based line number in the file. */
  lineNo: number;
  /** False only for a final line with no newline after it (a crash or a truncation). */
  terminated: boolean;
}

export async function* readLines(path: string): AsyncGenerator<RawLine> {
  yield* splitLines(createReadStream(path, { highWaterMark: 64 * 1024 }));
}

async function* splitLines(chunks: AsyncIterable<unknown>): AsyncGenerator<RawLine> {
  let rest: Buffer = Buffer.alloc(0);
  let lineNo = 0;
  for await (const chunk of chunks) {
    let buf = rest.length === 0 ? (chunk as Buffer) : Buffer.concat([rest, chunk as Buffer]);
    let nl: number;
    while ((nl = buf.indexOf(0x0a)) !== -1) {
      lineNo += 1;
      yield { line: buf.subarray(0, nl), lineNo, terminated: true };
      buf = buf.subarray(nl + 1);
    }
    rest = Buffer.from(buf);
  }
  if (rest.length > 0) yield { line: rest, lineNo: lineNo + 1, terminated: false };
}

/** The last line of a file, or null when the file is missing or empty. Reads from the end. */
export async function readLastLine(path: string): Promise<{ line: Buffer; terminated: boolean } | null> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const { size } = await fh.stat();
    if (size === 0) return null;
    let want = 64 * 1024;
    for (;;) {
      const len = Math.min(want, size);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      const terminated = buf[len - 1] === 0x0a;
      const body = terminated ? buf.subarray(0, len - 1) : buf;
      const nl = body.lastIndexOf(0x0a);
      if (nl !== -1) return { line: Buffer.from(body.subarray(nl + 1)), terminated };
      if (len === size) return { line: Buffer.from(body), terminated };
      want *= 4;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Lines of an already open file from its start; the handle stays open (the file may have been
 * renamed since it was opened, which is why a handle and not a path). Plain reads rather than
 * fh.createReadStream: leaving that stream early with autoClose off rejects with "Premature close".
 */
export async function* readLinesOf(fh: FileHandle): AsyncGenerator<RawLine> {
  async function* chunks(): AsyncGenerator<Buffer> {
    let pos = 0;
    for (;;) {
      const buf = Buffer.alloc(64 * 1024);
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  }
  yield* splitLines(chunks());
}
