/**
 * The chain head the writer thread keeps in shared memory (writer-thread.ts) against a death in
 * the one round where the file does not tell a restarted thread where the chain stands: an append
 * that failed (the records are reported lost), then the thread dies after it stored the new head
 * but before it stored how far it is done. The next thread must go on from a head that belongs to
 * the seq it starts after: the records reported lost stay a seq gap (`verify` reports it as
 * missing), and every line on disk still follows the one before it (no line whose prev is the hash
 * of a record that is not before it, which `verify` would call an altered and rehashed record).
 * Without a head tied to its seq the restarted thread wrote the lost records again, after the
 * hash of the last of them. A death one step earlier, before the new head is made current, must
 * leave the head of before the failed append: the next thread writes those records after all,
 * each once, the chain intact. The failure and the death are injected into the first writer thread
 * only (a preload module, which worker threads inherit: an ENOSPC from the Nth append, then a
 * throw from the store of `done`, or of the head slot index, that follows it).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { GENESIS_PREV, parseChainLine } from '../../src/audit/line.js';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { runHooked } from '../helpers/hooked-node.js';

const root = mkdtempSync(path.join(tmpdir(), 'turret-chain-head-death-'));
after(() => rmSync(root, { recursive: true, force: true }));

const HOOK = `
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { isMainThread, workerData } from 'node:worker_threads';
if (!isMainThread && workerData && workerData.resume === false && workerData.ring) {
  let appends = Number(process.env.FAIL_APPEND);
  let armed = false;
  const write = fs.writeSync;
  fs.writeSync = function (fd, buf, ...rest) {
    if (Buffer.isBuffer(buf) && buf.includes('{"seq":') && --appends === 0) {
      armed = true;
      throw Object.assign(new Error('ENOSPC: no space left on device, write (injected)'), { code: 'ENOSPC' });
    }
    return write.call(this, fd, buf, ...rest);
  };
  syncBuiltinESMExports();
  const store = Atomics.store;
  Atomics.store = (a, i, v) => {
    // 'done': the store of done (the head is stored); 'flip': the store that makes the new head slot current.
    const at = process.env.DIE_AT === 'done' ? a instanceof BigInt64Array : a instanceof Int32Array;
    if (armed && at && a.buffer === workerData.done) throw new Error('injected death after a failed append');
    return store(a, i, v);
  };
}
`;

const writerUrl = new URL('../../src/audit/writer.ts', import.meta.url).href;

// The first append of a round that rotates nothing, and appends later in a log rotating every ~2 KiB.
const CASES = [
  [1, 1 << 20],
  [3, 1 << 20],
  [1, 2048],
  [4, 2048],
] as const;

async function failThenDie(dieAt: 'flip' | 'done', failAppend: number, maxBytes: number): Promise<void> {
  const dir = mkdtempSync(path.join(root, `fail-${dieAt}-${failAppend}-${maxBytes}-`));
  const file = path.join(dir, 'audit.jsonl');
  const script = `
    const { openAuditLog } = await import(${JSON.stringify(writerUrl)});
    const errors = [];
    const log = await openAuditLog({ path: ${JSON.stringify(file)}, maxBytes: ${maxBytes}, maxFiles: 1000, onError: (e) => errors.push(e.message) });
    const rec = (i) => ({ time: new Date().toISOString(), event: 'request', outcome: 'completed', agent: 'a', reason: 'r' + i + ' é😀\\u2028' });
    let seq = 0;
    for (let g = 0; g < 8; g++) {
      for (let i = 0; i < 9; i++) log.write(rec(++seq));
      await log.flush();
    }
    await log.close().catch(() => undefined);
    process.stdout.write(JSON.stringify({ seq, errors }));
  `;
  const { code, out, err } = await runHooked(dir, HOOK, script, { FAIL_APPEND: String(failAppend), DIE_AT: dieAt });
  assert.equal(code, 0, err);
  const r = JSON.parse(out) as { seq: number; errors: string[] };
  const what = `death at ${dieAt}, append ${failAppend}, maxBytes ${maxBytes}: ${r.errors.join(' | ')}`;
  assert.equal(r.errors.length, 2, what);
  // The failed append names the records it lost; the death is reported and a thread restarted.
  const lostRange = /ENOSPC.*records (\d+) to (\d+) are lost/.exec(r.errors[0]!);
  assert.ok(lostRange !== null, what);
  assert.match(r.errors[1]!, /stopped \(injected death after a failed append\); started another/, what);
  const [lo, hi] = [Number(lostRange[1]), Number(lostRange[2])];

  const files = readdirSync(dir)
    .filter((f) => f.startsWith('audit.jsonl'))
    .map((f) => path.join(dir, f));
  const lines = files.flatMap((f) => readFileSync(f).toString('latin1').split('\n').filter(Boolean));
  const parsed = lines.map((l) => parseChainLine(Buffer.from(l, 'latin1'))).sort((a, b) => (a.ok && b.ok ? a.seq - b.seq : 0));
  const seqs: number[] = [];
  let prev: { seq: number; hash: string } | null = null;
  for (const p of parsed) {
    assert.ok(p.ok && p.intact, what);
    // Consecutive seqs on disk: the later one's prev is the earlier one's hash.
    if (prev !== null && p.seq === prev.seq + 1) assert.equal(p.prev, prev.hash, `${what}: seq ${p.seq} does not follow seq ${prev.seq}`);
    if (p.seq === 1) assert.equal(p.prev, GENESIS_PREV, `${what}: seq 1 does not start the chain`);
    seqs.push(p.seq);
    prev = { seq: p.seq, hash: p.hash };
  }
  assert.equal(new Set(seqs).size, seqs.length, `${what}: a record written twice`);
  // Every record is on disk but those reported lost (a lost one may be on disk: a rotation
  // inside the failed append wrote its first part).
  for (let s = 1; s <= r.seq; s++) if (s < lo || s > hi) assert.ok(seqs.includes(s), `${what}: seq ${s} missing but not reported lost`);
  const missing = Array.from({ length: r.seq }, (_, i) => i + 1).filter((s) => !seqs.includes(s));
  const v = await verifyAuditFiles(files);
  if (dieAt === 'flip') {
    // Dead before the new head was current: the next thread goes on from the head before the
    // failed append and writes those records after all (reported lost, yet there: never twice).
    assert.deepEqual(missing, [], what);
    assert.equal(v.ok, true, `${what}: ${JSON.stringify(v.problem)}`);
    return;
  }
  assert.ok(missing.length > 0, `${what}: the failed append lost nothing`);
  // verify reports the gap, and as a gap: never as a record altered and rehashed. Records lost at
  // the very start of a log look like rotated-out files (docs/operations.md): verify passes but
  // says where the chain starts, which `turret audit verify` prints.
  if (missing[0] === 1) {
    assert.equal(v.ok, true, `${what}: ${JSON.stringify(v.problem)}`);
    assert.equal(v.startsAtGenesis, false, what);
    assert.equal(v.first?.seq, Math.min(...seqs), what);
  } else {
    assert.equal(v.ok, false, what);
    assert.equal(v.problem?.kind, 'missing', `${what}: ${JSON.stringify(v.problem)}`);
    assert.match(v.problem?.detail ?? '', new RegExp(`seq jumps from ${missing[0]! - 1} to `), what);
  }
}

it('a thread that dies after a failed append, between storing the chain head and storing done: the lost records stay a reported gap, the chain follows on', async () => {
  for (const [failAppend, maxBytes] of CASES) await failThenDie('done', failAppend, maxBytes);
});

it('a thread that dies after a failed append, before the new chain head is current: the records are written after all, once, the chain intact', async () => {
  for (const [failAppend, maxBytes] of CASES) await failThenDie('flip', failAppend, maxBytes);
});
