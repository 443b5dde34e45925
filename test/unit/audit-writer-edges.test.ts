/**
 * The file log (src/audit/writer.ts) at the edges of its hand-over, through the real writer thread:
 * - lines of multi-byte text (3-byte only, 4-byte only, JSON-escaped lone surrogates) sized one
 *   byte under, at and over what the ring takes, between small records so they land at every kind
 *   of offset: each one that fits reaches the file byte for byte, exactly once, in order; each one
 *   over is reported lost with its seq, and the log goes on;
 * - close() racing the thread's period (at once, after an idle spell, with a flush under way,
 *   while writes go on turn by turn) leaves every record in the file, and a write after close
 *   throws a clear error instead of vanishing;
 * - every flush() resolves only once its records are in the file, whatever the thread was doing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { formatChainLine, GENESIS_PREV } from '../../src/audit/line.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { createRing, RingWriter } from '../../src/audit/ring.js';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { openAuditLog, writerIdle } from '../../src/audit/writer.js';
import { seqsOf } from '../helpers/audit-file.js';

const root = mkdtempSync(path.join(tmpdir(), 'turret-writer-edges-'));
after(() => rmSync(root, { recursive: true, force: true }));
// The log's writer threads are unref'd, and these tests wait for them.
const keepAlive = setInterval(() => undefined, 1 << 30);
after(() => clearInterval(keepAlive));
let n = 0;

const TIME = '2026-12-01T00:00:00.000Z';
const rec = (reason: string): AuditRecord => ({ time: TIME, event: 'request', outcome: 'completed', agent: 'a', reason });
const lineBytes = (reason: string, seq: number): number => Buffer.byteLength(formatChainLine(rec(reason), seq, GENESIS_PREV).line);
const oneTo = (k: number): number[] => Array.from({ length: k }, (_, i) => i + 1);

/** A reason of `unit` characters, topped up with ASCII, whose line for `seq` is exactly `target` bytes. */
function sized(unit: string, seq: number, target: number): string {
  const per = lineBytes(unit, seq) - lineBytes('', seq);
  let r = unit.repeat(Math.max(0, Math.floor((target - lineBytes('', seq)) / per) - 1));
  while (lineBytes(r, seq) < target) r += 'x';
  assert.equal(lineBytes(r, seq), target, `${JSON.stringify(unit)} to ${target}`);
  return r;
}

it('multi-byte lines one byte under, at and over what the ring takes: byte for byte or reported lost, in order', async () => {
  const file = path.join(root, `mb${++n}.jsonl`);
  const max = new RingWriter(createRing(4096)).maxText;
  const errors: string[] = [];
  const log = await openAuditLog({ path: file, ringBytes: 4096, onError: (e) => errors.push(e.message) });
  let seq = 0;
  let prev = GENESIS_PREV;
  const want: string[] = [];
  const lost: number[] = [];
  const put = (reason: string, keep: boolean): void => {
    seq += 1;
    const f = formatChainLine(rec(reason), seq, prev);
    // A record that could not be handed over takes no part in the chain (the writer thread
    // chains what it gets): the next one's prev is the last written line's hash.
    if (keep) prev = f.hash;
    if (keep) want.push(f.line);
    else lost.push(seq);
    log.write(rec(reason));
  };
  // € is 3 bytes in one unit (the bound is exact), 😀 4 bytes in two, a lone surrogate is written
  // as the 6 ASCII characters of its JSON escape.
  for (const unit of ['€', '😀', 'é😀\ud800€\udfff']) {
    for (const delta of [-1, 0, 1]) {
      for (let small = 0; small < 3; small++) put(`s${small}${'é'.repeat(small * 40)}`, true); // move the offset
      put(sized(unit, seq + 1, max + delta), delta <= 0);
    }
    await log.flush(); // some with the thread idle before the big one, some while it flows
  }
  put('after', true);
  await assert.rejects(log.close(), new RegExp(`seq ${lost[0]} is ${max + 1} bytes, more than the hand-over ring takes \\(${max}\\)`));
  assert.equal(errors.length, lost.length, errors.join('\n'));
  lost.forEach((s, i) => assert.match(errors[i] ?? '', new RegExp(`audit record seq ${s} is `)));
  assert.equal(readFileSync(file, 'utf8'), want.join(''));
  const v = await verifyAuditFiles([file]);
  assert.equal(v.ok, false);
  assert.equal(v.problem?.kind, 'missing');
});

it('close() racing the period leaves every record in the file; a write after close throws', async () => {
  for (let round = 0; round < 12; round++) {
    const file = path.join(root, `close${++n}.jsonl`);
    const errors: string[] = [];
    const log = await openAuditLog({ path: file, onError: (e) => errors.push(e.message) });
    let written = 0;
    const write = (k: number): void => {
      for (let i = 0; i < k; i++) log.write(rec(`r${++written}`));
    };
    write(1 + round * 5);
    let closing: Promise<void>;
    switch (round % 4) {
      case 0: // at once, the thread mid-period or not yet woken
        closing = log.close();
        break;
      case 1: // the thread asleep after an idle round: the close's own signal must wake it
        await writerIdle(log);
        write(3);
        closing = log.close();
        break;
      case 2: // a flush under way
        void log.flush();
        write(2);
        closing = log.close();
        break;
      default: {
        // writes go on turn by turn; the close lands among them
        for (let t = 0; t < round; t++) {
          write(1);
          await new Promise((r) => setImmediate(r));
        }
        closing = log.close();
      }
    }
    assert.throws(() => log.write(rec('late')), /audit log is closed/);
    await closing;
    await log.close(); // twice: nothing more to do
    assert.throws(() => log.write(rec('later')), /audit log is closed/);
    assert.deepEqual(errors, []);
    assert.deepEqual(seqsOf(file), oneTo(written), `round ${round}`);
    const v = await verifyAuditFiles([file]);
    assert.equal(v.ok, true, JSON.stringify(v));
  }
});

it('every flush() resolves only once its records are in the file, whatever the thread was doing', async () => {
  const file = path.join(root, `flush${++n}.jsonl`);
  const errors: string[] = [];
  // A small ring: some flushes wait behind batches that wait for room.
  const log = await openAuditLog({ path: file, ringBytes: 4096, onError: (e) => errors.push(e.message) });
  let written = 0;
  const checks: Array<Promise<void>> = [];
  for (let round = 0; round < 60; round++) {
    for (let i = 0; i < round % 7; i++) log.write(rec(`r${++written} ${'y'.repeat(round * 3)}`));
    const target = written;
    checks.push(log.flush().then(() => assert.ok(seqsOf(file).length >= target, `flush of ${target} resolved early`)));
    if (round % 10 === 9) await writerIdle(log);
    else if (round % 3 === 0) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(checks);
  await log.close();
  assert.deepEqual(errors, []);
  assert.deepEqual(seqsOf(file), oneTo(written));
});
