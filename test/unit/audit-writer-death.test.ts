/**
 * The audit writer thread dying by an exception of its own at the two points where a death can
 * make a record lost or written twice (docs/operations.md: "no record is lost or written twice
 * and the chain stays intact"), with records flowing and the file rotating:
 * - after an append reached the file, before the thread stored how far it is done: the next
 *   thread must find those records in the file and not write them again;
 * - after it stored how far it is done, before it freed the room in the ring: the next thread
 *   must not write the entries still in the ring again.
 * The death is injected into the first writer thread only (a preload module, which worker threads
 * inherit, makes its Atomics.store throw at the chosen point after N rounds); the log must report
 * it with a clear error, start another thread, and end with every record exactly once across the
 * rotated files, the chain verifying.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { runHooked } from '../helpers/hooked-node.js';

const root = mkdtempSync(path.join(tmpdir(), 'turret-writer-death-'));
after(() => rmSync(root, { recursive: true, force: true }));

// Loaded in every thread of the child; arms itself only in the log's first writer thread.
const HOOK = `
import { isMainThread, workerData } from 'node:worker_threads';
if (!isMainThread && workerData && workerData.resume === false && workerData.ring) {
  const point = process.env.DIE_AT;
  let rounds = Number(process.env.DIE_AFTER);
  const store = Atomics.store;
  Atomics.store = (a, i, v) => {
    const done = a instanceof BigInt64Array && a.buffer === workerData.done;
    const con = a instanceof Int32Array && a.buffer === workerData.ring && i === 1;
    if ((point === 'before-done' && done) || (point === 'before-consume' && con)) {
      if (--rounds === 0) throw new Error('injected death at ' + point);
    }
    return store(a, i, v);
  };
}
`;

const writerUrl = new URL('../../src/audit/writer.ts', import.meta.url).href;

async function dieAt(point: 'before-done' | 'before-consume', after: number): Promise<void> {
  const dir = mkdtempSync(path.join(root, `${point}-${after}-`));
  const file = path.join(dir, 'audit.jsonl');
  // Records flow in flushed groups (each group a round of the thread) and rotate every ~2 KiB.
  const script = `
    const { openAuditLog } = await import(${JSON.stringify(writerUrl)});
    const errors = [];
    const log = await openAuditLog({ path: ${JSON.stringify(file)}, maxBytes: 2048, maxFiles: 1000, onError: (e) => errors.push(e.message) });
    const rec = (i) => ({ time: new Date().toISOString(), event: 'request', outcome: 'completed', agent: 'a', reason: 'r' + i + ' é😀' });
    let seq = 0;
    for (let g = 0; g < 12; g++) {
      for (let i = 0; i < 9; i++) log.write(rec(++seq));
      await log.flush();
    }
    let closeError = null;
    await log.close().catch((e) => (closeError = e.message));
    process.stdout.write(JSON.stringify({ seq, errors, closeError }));
  `;
  const { code, out, err } = await runHooked(dir, HOOK, script, { DIE_AT: point, DIE_AFTER: String(after) });
  assert.equal(code, 0, err);
  const r = JSON.parse(out) as { seq: number; errors: string[]; closeError: string | null };
  assert.equal(r.errors.length, 1, r.errors.join('\n'));
  assert.match(r.errors[0]!, new RegExp(`audit writer thread for .* stopped \\(injected death at ${point}\\); started another`));
  assert.equal(r.closeError, r.errors[0]);
  const files = readdirSync(dir)
    .filter((f) => f.startsWith('audit.jsonl'))
    .map((f) => path.join(dir, f));
  assert.ok(files.length > 3, `rotated: ${files.length} files`);
  const seqs = files
    .flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean))
    .map((l) => (JSON.parse(l) as { seq: number }).seq)
    .sort((a, b) => a - b);
  assert.deepEqual(
    seqs,
    Array.from({ length: r.seq }, (_, i) => i + 1),
    `${point} after ${after}`,
  );
  const v = await verifyAuditFiles(files);
  assert.equal(v.ok, true, JSON.stringify(v));
}

for (const point of ['before-done', 'before-consume'] as const) {
  it(`a writer thread that throws ${point === 'before-done' ? 'after an append, before it says so' : 'before it frees the ring'}: reported, restarted, every record exactly once`, async () => {
    for (const after of [1, 6]) await dieAt(point, after);
  });
}
