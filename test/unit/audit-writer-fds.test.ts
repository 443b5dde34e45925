/**
 * A dead audit writer thread's file descriptors (src/audit/writer-start.ts): descriptors belong to
 * the process, so one a thread held when it died would stay open for good unless something closes
 * it; Node does, as the thread ends (`trackUnmanagedFds`, which the log sets explicitly). Stop the
 * thread again and again, at different points of its work and across rotations: the process must
 * hold exactly one descriptor on the log (the running thread's), never one more per death, and
 * none after close. (With `trackUnmanagedFds: false` this fails at the first death.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { openAuditLog, writerThreadOf } from '../../src/audit/writer.js';

const root = mkdtempSync(path.join(tmpdir(), 'turret-writer-fds-'));
after(() => rmSync(root, { recursive: true, force: true }));
// The log's writer threads are unref'd, and this test waits for them to end.
const keepAlive = setInterval(() => undefined, 1 << 30);
after(() => clearInterval(keepAlive));

const rec = (i: number): AuditRecord => ({ time: new Date().toISOString(), event: 'request', outcome: 'completed', agent: 'a', reason: `r${i}` });

/** Descriptors of this process open on `file` or a rotated `file.N`. */
function fdsOn(file: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the descriptor readdir itself used, closed meanwhile
    }
    if (target === file || target.startsWith(`${file}.`)) out.push(`${fd} -> ${target}`);
  }
  return out;
}

it('a writer thread stopped 10 times: the process never holds more than the one descriptor on the log', async () => {
  const file = path.join(root, 'a.jsonl');
  const errors: string[] = [];
  // A small maxBytes: the threads also rotate, so a descriptor reopened by a rotation is covered.
  const log = await openAuditLog({ path: file, maxBytes: 2048, maxFiles: 100, onError: (e) => errors.push(e.message) });
  let seq = 0;
  for (let i = 0; i < 10; i++) {
    for (let k = 0; k < 12; k++) log.write(rec(++seq));
    const flushed = log.flush();
    // Stop it before, during or after the batch: a different point each time.
    for (let t = 0; t < i % 5; t++) await new Promise((r) => setImmediate(r));
    const w = writerThreadOf(log);
    assert.ok(w, `thread ${i} running`);
    const exited = new Promise((r) => w.once('exit', r));
    await w.terminate();
    await exited;
    await flushed;
    // The next thread has opened the file once it answers a flush.
    await log.flush();
    assert.deepEqual(fdsOn(file).length, 1, `after death ${i + 1}: ${fdsOn(file).join(', ')}`);
  }
  await assert.rejects(log.close(), /stopped/);
  assert.deepEqual(fdsOn(file), [], 'after close');
  assert.equal(errors.length, 10, errors.join('\n'));
  const files = readdirSync(root).map((f) => path.join(root, f));
  const v = await verifyAuditFiles(files);
  assert.equal(v.ok, true, JSON.stringify(v));
  const lines = files.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean));
  assert.equal(lines.length, seq);
});
