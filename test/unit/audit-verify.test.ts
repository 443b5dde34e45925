import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, unlink, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAuditLog, verifyAuditFiles } from '../../src/audit/chain.js';

const root = await mkdtemp(join(tmpdir(), 'turret-audit-verify-'));
after(() => rm(root, { recursive: true, force: true }));
let n = 0;

/** A fresh log of `count` records; returns its path and its lines (without newlines). */
async function makeLog(count: number, opts: { maxBytes?: number } = {}): Promise<{ dir: string; path: string; lines: string[] }> {
  const dir = await mkdtemp(join(root, `${++n}-`));
  const path = join(dir, 'audit.log');
  const log = await openAuditLog({ path, maxFiles: 100, ...opts });
  for (let i = 1; i <= count; i++) {
    log.write({
      time: `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}Z`,
      event: 'request',
      outcome: i % 2 === 0 ? 'denied' : 'completed',
      agent: 'bot',
      host: 'h.example',
      path: `/r/${i}`,
    });
  }
  await log.close();
  const lines = (await readFile(path, 'utf8')).split('\n').slice(0, -1);
  return { dir, path, lines };
}

const save = (path: string, lines: string[]): Promise<void> => writeFile(path, lines.map((l) => `${l}\n`).join(''));

/** Rewrites a line's JSON and recomputes its own hash, as an attacker who knows the format would. */
function rehash(line: string, edit: (o: Record<string, unknown>) => void): string {
  const o = JSON.parse(line) as Record<string, unknown>;
  edit(o);
  delete o['hash'];
  const canonical = JSON.stringify(o);
  const h = createHash('sha256').update(canonical).digest('hex');
  return `${canonical.slice(0, -1)},"hash":"${h}"}`;
}

test('an untouched log verifies', async () => {
  const { path } = await makeLog(10);
  const v = await verifyAuditFiles([path]);
  assert.equal(v.ok, true);
  assert.equal(v.records, 10);
  assert.equal(v.problem, undefined);
});

test('a modified record is reported at its line', async () => {
  const { path, lines } = await makeLog(10);
  lines[4] = (lines[4] ?? '').replace('"outcome":"completed"', '"outcome":"denied"'); // seq 5
  await save(path, lines);
  const v = await verifyAuditFiles([path]);
  assert.deepEqual(v.problem && { line: v.problem.line, kind: v.problem.kind, file: v.problem.file }, { line: 5, kind: 'modified', file: path });
  assert.equal(v.ok, false);
  assert.equal(v.records, 4, 'records before the problem');
});

test('whitespace-only reformatting is still a modification (bytes are hashed, not parsed JSON)', async () => {
  const { path, lines } = await makeLog(3);
  lines[1] = (lines[1] ?? '').replace('"agent":"bot"', '"agent": "bot"');
  await save(path, lines);
  assert.equal((await verifyAuditFiles([path])).problem?.kind, 'modified');
});

test('a modified and rehashed record is caught by its successor and reported at the altered line', async () => {
  const { path, lines } = await makeLog(10);
  lines[6] = rehash(lines[6] ?? '', (o) => (o['host'] = 'evil.example')); // seq 7
  await save(path, lines);
  const v = await verifyAuditFiles([path]);
  assert.equal(v.problem?.kind, 'modified');
  assert.equal(v.problem?.line, 7);
});

test('a deleted record is reported as missing at the line after the gap', async () => {
  const { path, lines } = await makeLog(10);
  lines.splice(3, 1); // delete seq 4
  await save(path, lines);
  const v = await verifyAuditFiles([path]);
  assert.equal(v.problem?.kind, 'missing');
  assert.equal(v.problem?.line, 4);
  assert.match(v.problem?.detail ?? '', /3 to 5/);
});

test('deleting a record and renumbering the rest is still caught', async () => {
  const { path, lines } = await makeLog(6);
  const rest = lines.slice(3).map((l) => rehash(l, (o) => (o['seq'] = (o['seq'] as number) - 1)));
  await save(path, [...lines.slice(0, 2), ...rest]);
  const v = await verifyAuditFiles([path]);
  assert.equal(v.ok, false);
  assert.equal(v.problem?.kind, 'modified');
  assert.equal(v.problem?.line, 2, 'the break is between line 2 and line 3');
  assert.match(v.problem?.detail ?? '', /audit\.log:3\)/);
});

test('two swapped records are reported as reordered, not missing', async () => {
  const { path, lines } = await makeLog(10);
  [lines[5], lines[6]] = [lines[6] ?? '', lines[5] ?? '']; // seq 7 now before seq 6
  await save(path, lines);
  const v = await verifyAuditFiles([path]);
  assert.equal(v.problem?.kind, 'reordered');
  assert.equal(v.problem?.line, 6);
  assert.match(v.problem?.detail ?? '', /found at .*:7/);
});

test('a record moved far down is reordered; a duplicated record is reordered', async () => {
  const moved = await makeLog(10);
  const [two] = moved.lines.splice(1, 1);
  moved.lines.push(two ?? '');
  await save(moved.path, moved.lines);
  const v1 = await verifyAuditFiles([moved.path]);
  assert.equal(v1.problem?.kind, 'reordered');
  assert.equal(v1.problem?.line, 2);

  const dup = await makeLog(5);
  dup.lines.splice(3, 0, dup.lines[2] ?? '');
  await save(dup.path, dup.lines);
  const v2 = await verifyAuditFiles([dup.path]);
  assert.equal(v2.problem?.kind, 'reordered');
  assert.equal(v2.problem?.line, 4);
});

test('a truncated last line is malformed', async () => {
  const { path } = await makeLog(5);
  const text = await readFile(path, 'utf8');
  await writeFile(path, text.slice(0, -30));
  const v = await verifyAuditFiles([path]);
  assert.deepEqual({ kind: v.problem?.kind, line: v.problem?.line }, { kind: 'malformed', line: 5 });
  assert.equal(v.records, 4);
});

test('garbage, a blank line, a CRLF line and a non-object are malformed', async () => {
  for (const edit of [
    (l: string[]) => l.splice(2, 0, 'hello'),
    (l: string[]) => l.splice(2, 0, ''),
    (l: string[]) => (l[2] = `${l[2] ?? ''}\r`),
    (l: string[]) => (l[2] = '[1,2,3]'),
  ]) {
    const { path, lines } = await makeLog(5);
    edit(lines);
    await save(path, lines);
    const v = await verifyAuditFiles([path]);
    assert.equal(v.problem?.kind, 'malformed', JSON.stringify(lines[2]?.slice(0, 30)));
    assert.equal(v.problem?.line, 3);
  }
});

test('a second hash key smuggled into a line does not pass', async () => {
  const { path, lines } = await makeLog(5);
  lines[2] = (lines[2] ?? '').replace('{"seq"', `{"hash":"${'a'.repeat(64)}","seq"`);
  await save(path, lines);
  const v = await verifyAuditFiles([path]);
  assert.equal(v.ok, false);
  assert.equal(v.problem?.line, 3);
});

test('across rotated files: a missing middle file is reported at the first line of the next', async () => {
  const { dir, path } = await makeLog(40, { maxBytes: 1200 });
  const files = (await readdir(dir)).map((f) => join(dir, f));
  assert.ok(files.length >= 4);
  assert.equal((await verifyAuditFiles(files)).ok, true);
  const middle = `${path}.2`;
  const firstSeqAfter = JSON.parse((await readFile(`${path}.1`, 'utf8')).split('\n')[0] ?? '') as { seq: number };
  await unlink(middle);
  const v = await verifyAuditFiles(files.filter((f) => f !== middle));
  assert.equal(v.problem?.kind, 'missing');
  assert.equal(v.problem?.file, `${path}.1`);
  assert.equal(v.problem?.line, 1);
  assert.equal(v.last?.seq !== undefined && v.last.seq < firstSeqAfter.seq, true);
});

test('a record swapped between rotated files is reordered', async () => {
  const { path } = await makeLog(30, { maxBytes: 1500 });
  const a = (await readFile(`${path}.1`, 'utf8')).split('\n').slice(0, -1);
  const b = (await readFile(path, 'utf8')).split('\n').slice(0, -1);
  const lastOfA = a.pop() ?? '';
  b.unshift(lastOfA);
  const firstOfB = b.splice(1, 1)[0] ?? '';
  a.push(firstOfB);
  await save(`${path}.1`, a);
  await save(path, b);
  const files = (await readdir(join(path, '..'))).map((f) => join(path, '..', f));
  const v = await verifyAuditFiles(files);
  assert.equal(v.problem?.kind, 'reordered');
  assert.equal(v.problem?.file, `${path}.1`);
  assert.equal(v.problem?.line, a.length);
});

test('seq 1 must start from the genesis prev; an unreadable file is reported', async () => {
  const { path, lines } = await makeLog(3);
  lines[0] = rehash(lines[0] ?? '', (o) => (o['prev'] = 'f'.repeat(64)));
  await save(path, lines);
  assert.equal((await verifyAuditFiles([path])).problem?.kind, 'modified');

  const gone = join(root, 'does-not-exist.log');
  const v = await verifyAuditFiles([gone]);
  assert.deepEqual({ ok: v.ok, file: v.problem?.file, kind: v.problem?.kind }, { ok: false, file: gone, kind: 'missing' });
});

test('no files, or the same file twice, are handled', async () => {
  assert.deepEqual(await verifyAuditFiles([]), { ok: true, records: 0 });
  const { path } = await makeLog(3);
  assert.equal((await verifyAuditFiles([path, path])).records, 3);
});
