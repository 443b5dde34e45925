/**
 * The self-timed audit writer thread (src/audit/ring.ts WRITE_PERIOD_MS, writer-thread.ts): while
 * records flow it comes for them on its own, and only a record written after it went idle wakes
 * it. So:
 * - a record written after an idle spell reaches the file with no later traffic and no flush;
 * - records written one per event-loop turn reach the file while the writes go on (nobody asks);
 * - a process killed while records wait in the ring loses only records written after the last
 *   confirmed flush, never one before it, and leaves a file that ends with a complete line, whose
 *   chain verifies and that the next start continues (docs/operations.md, what a crash can lose).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import type { AuditRecord } from '../../src/audit/record.js';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { openAuditLog, writerIdle } from '../../src/audit/writer.js';
import { linesOnDisk, seqsOf } from '../helpers/audit-file.js';

const root = mkdtempSync(path.join(tmpdir(), 'turret-writer-period-'));
after(() => rmSync(root, { recursive: true, force: true }));
// The log's writer threads are unref'd, and these tests wait for them.
const keepAlive = setInterval(() => undefined, 1 << 30);
after(() => clearInterval(keepAlive));
let n = 0;

const rec = (i: number): AuditRecord => ({ time: new Date().toISOString(), event: 'request', outcome: 'completed', agent: 'a', reason: `r${i}` });
const oneTo = (k: number): number[] => Array.from({ length: k }, (_, i) => i + 1);

it('a record written after an idle spell reaches the file with no later traffic and no flush', async () => {
  const file = path.join(root, `idle${++n}.jsonl`);
  const errors: string[] = [];
  const log = await openAuditLog({ path: file, onError: (e) => errors.push(e.message) });
  for (let round = 1; round <= 3; round++) {
    await writerIdle(log);
    log.write(rec(round));
    // No flush, no later write: only the thread's own wake-up on this publish can bring it in.
    await linesOnDisk(file, round);
    assert.deepEqual(seqsOf(file), oneTo(round));
  }
  await log.close();
  assert.deepEqual(errors, []);
});

it('records written one per event-loop turn reach the file while the writes go on, each exactly once', async () => {
  const file = path.join(root, `flow${++n}.jsonl`);
  const errors: string[] = [];
  const log = await openAuditLog({ path: file, onError: (e) => errors.push(e.message) });
  let written = 0;
  // Keep writing until the thread has appended 200 records on its own (bounded).
  const onDisk = linesOnDisk(file, 200);
  let arrived = false;
  void onDisk.then(() => (arrived = true));
  for (let turn = 0; !arrived && turn < 1_000_000; turn++) {
    log.write(rec(++written));
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(arrived, true, 'the thread appended records while they were still being written');
  for (let i = 0; i < 50; i++) log.write(rec(++written));
  await log.close();
  assert.deepEqual(errors, []);
  assert.deepEqual(seqsOf(file), oneTo(written));
  const v = await verifyAuditFiles([file]);
  assert.equal(v.ok, true, JSON.stringify(v));
});

it('a process killed with records in the ring loses only records after its last flush; the file stays whole and continues', async () => {
  const file = path.join(root, `kill${++n}.jsonl`);
  const writerUrl = new URL('../../src/audit/writer.ts', import.meta.url).href;
  // The child confirms 1..100 with a flush, writes 101..300 without one, and is killed at once.
  const script = `
    const { openAuditLog } = await import(${JSON.stringify(writerUrl)});
    const log = await openAuditLog({ path: ${JSON.stringify(file)} });
    const rec = (i) => ({ time: new Date().toISOString(), event: 'request', outcome: 'completed', agent: 'a', reason: 'r' + i });
    for (let i = 1; i <= 100; i++) log.write(rec(i));
    await log.flush();
    for (let i = 101; i <= 300; i++) log.write(rec(i));
    process.kill(process.pid, 'SIGKILL');
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
  assert.equal(signal, 'SIGKILL', stderr);
  // A kill can land inside the thread's write() (the kernel stops a regular-file write between
  // pages on a fatal signal): then the last line is torn, and the next start refuses the file
  // until the operator removes it (docs/operations.md). Nothing before it may be touched.
  const text = readFileSync(file, 'utf8');
  const whole = text.slice(0, text.lastIndexOf('\n') + 1);
  if (whole !== text) {
    await assert.rejects(openAuditLog({ path: file }), /ends with an incomplete line/);
    writeFileSync(file, whole);
  }
  const seqs = seqsOf(file);
  // Lost: some suffix of 101..300 (those still in the ring), never a flushed record, never a gap.
  assert.ok(seqs.length >= 100 && seqs.length <= 300, `${seqs.length} records on disk`);
  assert.deepEqual(seqs, oneTo(seqs.length));
  const v = await verifyAuditFiles([file]);
  assert.equal(v.ok, true, JSON.stringify(v));
  // The next start continues the chain after the last record that reached the file.
  const log = await openAuditLog({ path: file });
  log.write(rec(0));
  await log.close();
  assert.deepEqual(seqsOf(file), oneTo(seqs.length + 1));
  const v2 = await verifyAuditFiles([file]);
  assert.equal(v2.ok, true, JSON.stringify(v2));
});
