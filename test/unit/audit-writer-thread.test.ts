/**
 * The audit writer thread (src/audit/writer-thread.ts) stopped as a crash would stop it
 * (Worker.terminate), at whatever point of its work the stop lands: the log must report it, start
 * another thread, and end with every record in the file exactly once, the chain intact. A thread
 * that keeps dying makes the log give up, and every later record is reported as lost.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { MAX_RESTARTS, openAuditLog, writerThreadOf } from '../../src/audit/writer.js';

const root = mkdtempSync(path.join(tmpdir(), 'turret-writer-thread-'));
after(() => rmSync(root, { recursive: true, force: true }));
// The log's writer threads are unref'd, and these tests wait for them to end (terminate()).
const keepAlive = setInterval(() => undefined, 1 << 30);
after(() => clearInterval(keepAlive));
let n = 0;

const rec = (i: number): AuditRecord => ({ time: new Date().toISOString(), event: 'request', outcome: 'completed', agent: 'a', reason: `r${i}` });
const seqs = (file: string): number[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { seq: number }).seq);

it('a writer thread stopped at any point of its work: reported, and every record lands exactly once', async () => {
  // Each round stops the thread after a different number of event-loop turns: before the batch
  // reached it, while it appends, or after; the result must be the same every time.
  for (let turns = 0; turns < 8; turns++) {
    const file = path.join(root, `a${++n}.jsonl`);
    const errors: string[] = [];
    const log = await openAuditLog({ path: file, onError: (e) => errors.push(e.message) });
    for (let i = 1; i <= 5; i++) log.write(rec(i));
    await log.flush();
    for (let i = 6; i <= 40; i++) log.write(rec(i));
    const flushed = log.flush(); // sends records 6..40 and waits for them
    for (let t = 0; t < turns; t++) await new Promise((r) => setImmediate(r));
    const stopped = writerThreadOf(log)?.terminate();
    await flushed;
    await stopped;
    for (let i = 41; i <= 45; i++) log.write(rec(i));
    await assert.rejects(log.close(), /audit writer thread for .* stopped/);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0] ?? '', /stopped \(.*\); started another, which appends the records it had not written/);
    assert.deepEqual(
      seqs(file),
      Array.from({ length: 45 }, (_, i) => i + 1),
      `after ${turns} turns`,
    );
    const v = await verifyAuditFiles([file]);
    assert.equal(v.ok, true, JSON.stringify(v));
  }
});

it('a writer thread that keeps dying: the log gives up and reports every later record as lost', async () => {
  const file = path.join(root, `b${++n}.jsonl`);
  const errors: string[] = [];
  const log = await openAuditLog({ path: file, onError: (e) => errors.push(e.message) });
  log.write(rec(1));
  await log.flush();
  // Stop each new thread before it confirms anything.
  for (let i = 0; i <= MAX_RESTARTS; i++) {
    const w = writerThreadOf(log);
    assert.ok(w, `thread ${i} running`);
    const exited = new Promise((r) => w.once('exit', r));
    await w.terminate();
    await exited;
  }
  assert.equal(writerThreadOf(log), null);
  assert.match(errors.at(-1) ?? '', new RegExp(`stopped \\(.*\\) ${MAX_RESTARTS + 1} times in a row; records from seq 2 on are lost`));
  log.write(rec(2));
  log.write(rec(3));
  await log.flush();
  assert.match(errors.at(-1) ?? '', /is not running; records 2 to 3 are lost/);
  await assert.rejects(log.close(), /stopped/);
  assert.deepEqual(seqs(file), [1]);
});
