/**
 * The writer thread's idle hand-shake (src/audit/ring.ts idle() and publish(), the "Dekker-style
 * flag"), driven through the real writer thread at the three points where a record published by
 * the event loop can meet a thread going to sleep. The thread runs writer-thread.ts unchanged; its
 * own Atomics.store/wait are wrapped so it stops at the chosen point and goes on only after this
 * test has published a record there:
 * - before it raises IDLE (the publish sees no idle thread and wakes nobody),
 * - after it raised IDLE, before it looks at the ring (the publish sees IDLE and wakes it),
 * - after it found the ring empty, just before it sleeps (the publish's wake-up must end the sleep).
 * In every case the record must reach the file with nothing else happening: no later record, no
 * flush, no close. A lost wake-up leaves it in the ring for good (the test then runs into its
 * timeout; it waits for the file's change events, never for a clock).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { chainBody } from '../../src/audit/line.js';
import { CLOSE, createRing, RingWriter } from '../../src/audit/ring.js';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { DONE_BYTES, type ThreadInit } from '../../src/audit/writer-thread.js';
import { linesOnDisk, seqsOf } from '../helpers/audit-file.js';

const root = mkdtempSync(path.join(tmpdir(), 'turret-wake-race-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

type Point = 'before-idle' | 'after-idle' | 'before-sleep';

// The thread's boot: wrap Atomics for the ring's IDLE (6) and EPOCH (5) words, then load the real
// writer thread. `hs[0]` counts the test's "go on" signals; the thread stops `stops` times.
const BOOT = `(async () => {
const { workerData, parentPort } = await import('node:worker_threads');
const ring = workerData.ring;
const hs = new Int32Array(workerData.hs);
const realStore = Atomics.store, realWait = Atomics.wait, realLoad = Atomics.load;
let stops = workerData.stops;
const stop = () => {
  stops -= 1;
  const k = realLoad(hs, 0);
  parentPort.postMessage({ t: 'stopped' });
  realWait(hs, 0, k);
};
Atomics.store = (a, i, v) => {
  const ours = a.buffer === ring && i === 6 && v === 1 && stops > 0;
  if (ours && workerData.point === 'before-idle') stop();
  const r = realStore(a, i, v);
  if (ours && workerData.point === 'after-idle') stop();
  return r;
};
Atomics.wait = (a, i, v, t) => {
  if (a.buffer === ring && i === 5 && t === undefined && stops > 0 && workerData.point === 'before-sleep') stop();
  return realWait(a, i, v, t);
};
const m = await import('tsx/esm/api');
m.register();
await import(${JSON.stringify(new URL('../../src/audit/writer-thread.ts', import.meta.url).href)});
})();
`;

async function race(point: Point, rounds: number): Promise<void> {
  const file = path.join(root, `${point}-${++n}.jsonl`);
  const ringBuf = createRing(4096);
  const hs = new SharedArrayBuffer(4);
  const init: ThreadInit & { hs: SharedArrayBuffer; point: Point; stops: number } = {
    path: file,
    maxBytes: 1 << 30,
    maxFiles: 2,
    fsync: false,
    done: new SharedArrayBuffer(DONE_BYTES), // seq 0, head 32 zero bytes: the genesis prev
    ring: ringBuf,
    resume: false,
    hs,
    point,
    stops: rounds,
  };
  const w = new Worker(BOOT, { eval: true, workerData: init });
  const problems: string[] = [];
  const stopped: Array<() => void> = [];
  let stopsSeen = 0;
  w.on('message', (m: { t: string }) => {
    if (m.t === 'stopped') {
      stopsSeen += 1;
      stopped.shift()?.();
    } else if (m.t !== 'ready') problems.push(JSON.stringify(m));
  });
  w.on('error', (e) => problems.push(e.message));
  const exited = new Promise<void>((r) => w.once('exit', () => r()));
  const writer = new RingWriter(ringBuf);
  const ctl = new Int32Array(hs);
  for (let seq = 1; seq <= rounds; seq++) {
    // The thread stops at the point (its first idle round, then the one after each record).
    if (stopsSeen < seq) await new Promise<void>((r) => stopped.push(r));
    const body = chainBody({ time: new Date().toISOString(), event: 'request', outcome: 'completed', agent: 'a', reason: `r${seq} é😀` });
    assert.equal(writer.publish(body, body.length * 3 + 1, seq, seq, true), true);
    Atomics.add(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    // Only the publish's own wake-up (or the thread's look at the ring) can bring it in.
    await linesOnDisk(file, seq);
  }
  writer.signal(CLOSE, 1);
  await exited;
  assert.deepEqual(problems, []);
  assert.deepEqual(
    seqsOf(file),
    Array.from({ length: rounds }, (_, i) => i + 1),
  );
  const v = await verifyAuditFiles([file]);
  assert.equal(v.ok, true, JSON.stringify(v));
}

for (const point of ['before-idle', 'after-idle', 'before-sleep'] as const) {
  it(`a record published while the thread goes idle (${point}) reaches the file unasked`, { timeout: 20_000 }, async () => {
    await race(point, 5);
  });
}
