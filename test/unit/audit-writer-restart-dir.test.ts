/**
 * A writer thread that dies while the audit directory is gone (deleted by an operator or a
 * cleanup job, docs/operations.md: "an audit file deleted ... or its whole directory removed ...
 * the writer reopens the path"): the thread started in its place must recreate the directory as
 * the running thread would, and append the records, instead of failing to open the file on every
 * restart until the log gives up and reports every later record lost.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import type { AuditRecord } from '../../src/audit/record.js';
import { openAuditLog, writerThreadOf } from '../../src/audit/writer.js';

const root = mkdtempSync(path.join(tmpdir(), 'turret-restart-dir-'));
after(() => rmSync(root, { recursive: true, force: true }));
// The log's writer threads are unref'd, and this test waits for them.
const keepAlive = setInterval(() => undefined, 1 << 30);
after(() => clearInterval(keepAlive));

const rec = (i: number): AuditRecord => ({ time: new Date().toISOString(), event: 'request', outcome: 'completed', agent: 'a', reason: `r${i}` });

it('a writer thread that dies while the audit directory is gone: the next one recreates it and appends the records', async () => {
  const dir = path.join(root, 'gone');
  const file = path.join(dir, 'audit.jsonl');
  const errors: string[] = [];
  const log = await openAuditLog({ path: file, onError: (e) => errors.push(e.message) });
  for (let i = 1; i <= 3; i++) log.write(rec(i));
  await log.flush();
  rmSync(dir, { recursive: true, force: true });
  const w = writerThreadOf(log);
  assert.ok(w);
  const exited = new Promise((r) => w.once('exit', r));
  await w.terminate();
  await exited;
  for (let i = 4; i <= 6; i++) log.write(rec(i));
  await log.flush();
  await assert.rejects(log.close(), /stopped/);
  assert.doesNotMatch(errors.join('\n'), /lost/);
  assert.deepEqual(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { seq: number }).seq),
    [4, 5, 6],
  );
});
