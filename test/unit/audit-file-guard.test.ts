/**
 * The audit writer's file guard (src/audit/file-guard.ts) with real files: the open log deleted,
 * moved aside with a new file put at its path, or replaced by a rename over it, is reported before
 * the next batch and the writer reopens the path, so no later record goes to a file nobody sees.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import type { AuditRecord } from '../../src/audit/record.js';
import { openAuditLog } from '../../src/audit/writer.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function logIn(): Promise<{ file: string; errors: string[]; log: Awaited<ReturnType<typeof openAuditLog>> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-guard-'));
  dirs.push(dir);
  const file = path.join(dir, 'audit.jsonl');
  const errors: string[] = [];
  const log = await openAuditLog({ path: file, onError: (e) => errors.push(e.message) });
  return { file, errors, log };
}

const rec = (n: number): AuditRecord => ({ time: new Date().toISOString(), event: 'request', outcome: 'allowed', agent: 'a', reason: `r${n}` });
const seqs = (file: string): number[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { seq: number }).seq);

const cases: Array<[string, (file: string) => void, RegExp]> = [
  ['deleted', (f) => unlinkSync(f), /is gone \(ENOENT\)/],
  [
    'moved aside, a new file at its path',
    (f) => {
      renameSync(f, `${f}.old`);
      writeFileSync(f, '');
    },
    /deleted or replaced by another file/,
  ],
  [
    'replaced by a rename over it',
    (f) => {
      writeFileSync(`${f}.new`, '');
      renameSync(`${f}.new`, f);
    },
    /deleted or replaced by another file/,
  ],
];

for (const [name, act, msg] of cases) {
  it(`the open audit file ${name}: reported, and later records land at the path`, async () => {
    const { file, errors, log } = await logIn();
    log.write(rec(1));
    await log.flush();
    assert.deepEqual(seqs(file), [1]);
    assert.deepEqual(errors, []);
    act(file);
    log.write(rec(2));
    log.write(rec(3));
    await log.flush();
    assert.equal(errors.length, 1, errors.join('; '));
    assert.match(errors[0]!, msg);
    assert.match(errors[0]!, /reopened it/);
    assert.deepEqual(seqs(file), [2, 3], 'the records after the change are in the file at the path');
    await log.close();
  });
}
