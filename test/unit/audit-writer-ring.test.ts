/**
 * The audit log through its hand-over ring (src/audit/ring.ts, writer.ts, writer-thread.ts), with
 * rings small enough that every batch is cut into several entries, entries wrap around the end
 * of the ring, and batches wait on the event loop for room:
 * - a stalled writer (the log is a FIFO nobody reads: the thread blocks in write()) never blocks
 *   the event loop, and once the reader drains it every record arrives exactly once, in order;
 * - the thread stopped at any point while batches wait for room: every record exactly once;
 * - a record too large for the ring is reported lost (never silently), and the log goes on.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, read, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import type { AuditRecord } from '../../src/audit/record.js';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { openAuditLog, writerThreadOf } from '../../src/audit/writer.js';

const root = mkdtempSync(path.join(tmpdir(), 'turret-writer-ring-'));
after(() => rmSync(root, { recursive: true, force: true }));
// The log's writer threads are unref'd, and these tests wait for them.
const keepAlive = setInterval(() => undefined, 1 << 30);
after(() => clearInterval(keepAlive));
let n = 0;

// ~330-byte lines: a 4 KiB ring (2 KiB per entry at most) holds a handful.
const rec = (i: number): AuditRecord => ({ time: new Date().toISOString(), event: 'request', outcome: 'completed', agent: 'a', reason: `r${i} ${'x'.repeat(150)}` });
const seqsOf = (text: string): number[] =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
const oneTo = (k: number): number[] => Array.from({ length: k }, (_, i) => i + 1);

it('a stalled writer: the event loop goes on, batches wait for room, and nothing is lost once the disk moves', { timeout: 60_000 }, async () => {
  const fifo = path.join(root, `fifo${++n}`);
  execFileSync('mkfifo', [fifo]);
  // Read and write end in one (a FIFO opened O_RDWR never blocks): the thread's write() finds a
  // reader, and blocks once the pipe's 64 KiB are full because nobody reads yet.
  const fd = openSync(fifo, 'r+');
  const errors: string[] = [];
  const log = await openAuditLog({ path: fifo, ringBytes: 4096, onError: (e) => errors.push(e.message) });
  const total = 600; // ~200 KB: far more than the pipe and the ring hold together
  const flushes: Array<Promise<void>> = [];
  let lastDone = false;
  for (let i = 1; i <= total; i++) {
    log.write(rec(i));
    if (i % 50 === 0) flushes.push(log.flush()); // each sends its batch at once
  }
  void flushes.at(-1)!.then(() => (lastDone = true));
  // The event loop turns while the writer is stuck: timers and immediates run.
  for (let t = 0; t < 20; t++) await new Promise((r) => setImmediate(r));
  assert.equal(lastDone, false, 'the last batch cannot have been written: nobody reads the FIFO');
  // The disk moves again: read everything through the thread pool until all lines are in.
  let got = '';
  const buf = Buffer.alloc(64 * 1024);
  while ((got.match(/\n/g)?.length ?? 0) < total) {
    const k = await new Promise<number>((res, rej) => read(fd, buf, 0, buf.length, null, (e, b) => (e ? rej(e) : res(b))));
    got += buf.subarray(0, k).toString('utf8');
  }
  await Promise.all(flushes);
  await log.close();
  closeSync(fd);
  assert.deepEqual(errors, []);
  assert.deepEqual(seqsOf(got), oneTo(total));
  const copy = path.join(root, `copy${n}.jsonl`);
  writeFileSync(copy, got);
  const v = await verifyAuditFiles([copy]);
  assert.equal(v.ok, true, JSON.stringify(v));
});

it('a writer thread stopped at any point while batches wait for room in a small ring: every record exactly once', async () => {
  for (let turns = 0; turns < 10; turns++) {
    const file = path.join(root, `k${++n}.jsonl`);
    const errors: string[] = [];
    const log = await openAuditLog({ path: file, ringBytes: 4096, onError: (e) => errors.push(e.message) });
    for (let i = 1; i <= 10; i++) log.write(rec(i));
    await log.flush();
    for (let i = 11; i <= 80; i++) log.write(rec(i)); // ~23 KB: cut into entries, most wait for room
    const flushed = log.flush();
    for (let t = 0; t < turns; t++) await new Promise((r) => setImmediate(r));
    const stopped = writerThreadOf(log)?.terminate();
    await flushed;
    await stopped;
    for (let i = 81; i <= 90; i++) log.write(rec(i));
    await assert.rejects(log.close(), /audit writer thread for .* stopped/);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0] ?? '', /stopped \(.*\); started another, which appends the records it had not written/);
    assert.deepEqual(seqsOf(readFileSync(file, 'utf8')), oneTo(90), `after ${turns} turns`);
    const v = await verifyAuditFiles([file]);
    assert.equal(v.ok, true, JSON.stringify(v));
  }
});

it('a record larger than the ring can take: reported lost with its seq, and the log goes on', async () => {
  const file = path.join(root, `big${++n}.jsonl`);
  const errors: string[] = [];
  const log = await openAuditLog({ path: file, ringBytes: 4096, onError: (e) => errors.push(e.message) });
  log.write(rec(1));
  log.write({ ...rec(2), reason: 'y'.repeat(3000) });
  log.write(rec(3));
  await log.flush();
  log.write(rec(4));
  await assert.rejects(log.close(), /seq 2 is \d+ bytes, more than the hand-over ring takes/);
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.deepEqual(seqsOf(readFileSync(file, 'utf8')), [1, 3, 4]);
  const v = await verifyAuditFiles([file]);
  assert.equal(v.ok, false);
  assert.equal(v.problem?.kind, 'missing');
});
