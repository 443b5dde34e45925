import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GENESIS_PREV, openAuditLog, verifyAuditFiles } from '../../src/audit/chain.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { isTurretError } from '../../src/core/errors.js';

const root = await mkdtemp(join(tmpdir(), 'turret-audit-chain-'));
after(() => rm(root, { recursive: true, force: true }));
let n = 0;
const dir = async (): Promise<string> => {
  const d = join(root, String(++n));
  await mkdir(d);
  return d;
};

const rec = (i: number, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  time: new Date(1_700_000_000_000 + i).toISOString(),
  event: 'request',
  outcome: 'completed',
  agent: `agent-${i % 3}`,
  method: 'GET',
  scheme: 'https',
  host: 'api.example.test',
  port: 443,
  path: `/items/${i}?page=${i}`,
  status: 200,
  ...extra,
});

interface Line {
  seq: number;
  prev: string;
  hash: string;
  [k: string]: unknown;
}
const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
const parsed = async (file: string): Promise<Line[]> => (await lines(file)).map((l) => JSON.parse(l) as Line);

test('each line hashes its own bytes without the hash field, and links to the previous line', async () => {
  const path = join(await dir(), 'audit.log');
  const log = await openAuditLog({ path });
  // Characters that would break a naive line format or a re-serialising verifier.
  log.write(rec(1, { reason: 'line\nbreak \u2028 sep "quote" \\ back \ud800 lone surrogate', host: 'bücher.example' }));
  log.write(rec(2, { outcome: 'denied', code: 'policy_denied', rule: null }));
  log.write(rec(3, { secrets: ['gh'], fingerprints: { gh: 'ab12' } }));
  await log.close();
  const raw = await lines(path);
  assert.equal(raw.length, 3, 'one record per line, whatever the strings hold');
  let prev = GENESIS_PREV;
  for (const [i, line] of raw.entries()) {
    const m = /^(.*),"hash":"([0-9a-f]{64})"\}$/s.exec(line);
    assert.ok(m, 'the hash is the last field');
    const canonical = `${m[1]}}`;
    assert.equal(createHash('sha256').update(canonical, 'utf8').digest('hex'), m[2]);
    const obj = JSON.parse(line) as Line;
    assert.equal(obj.seq, i + 1);
    assert.equal(obj.prev, prev);
    assert.ok(line.startsWith(`{"seq":${i + 1},"prev":"${prev}","time":`), 'seq and prev lead the line');
    prev = obj.hash;
  }
  assert.equal((await parsed(path))[0]?.['path'], '/items/1?page=', 'query values are stripped on write');
  assert.deepEqual(await verifyAuditFiles([path]), {
    ok: true,
    records: 3,
    first: { seq: 1, prev: GENESIS_PREV },
    last: { seq: 3, hash: prev },
    startsAtGenesis: true,
  });
  assert.equal((await stat(path)).mode & 0o077, 0, 'the log is not readable by group or others');
});

test('order is preserved under a burst of writes and close() flushes everything', async () => {
  const path = join(await dir(), 'audit.log');
  const log = await openAuditLog({ path, fsync: true });
  for (let i = 1; i <= 2000; i++) log.write(rec(i));
  await log.close();
  const all = await parsed(path);
  assert.equal(all.length, 2000);
  assert.deepEqual(
    all.map((l) => l.seq),
    Array.from({ length: 2000 }, (_, i) => i + 1),
  );
  assert.deepEqual(
    all.map((l) => l['path']),
    Array.from({ length: 2000 }, (_, i) => `/items/${i + 1}?page=`),
  );
  assert.throws(
    () => log.write(rec(1)),
    (e: unknown) => isTurretError(e) && e.code === 'internal_error',
  );
});

test('reopening continues the chain from the last line of the existing file', async () => {
  const path = join(await dir(), 'audit.log');
  for (let round = 0; round < 3; round++) {
    const log = await openAuditLog({ path });
    for (let i = 0; i < 5; i++) log.write(rec(round * 5 + i));
    await log.close();
  }
  const all = await parsed(path);
  assert.deepEqual(
    all.map((l) => l.seq),
    Array.from({ length: 15 }, (_, i) => i + 1),
  );
  assert.equal(all[5]?.prev, all[4]?.hash);
  assert.equal(all[10]?.prev, all[9]?.hash);
  assert.equal((await verifyAuditFiles([path])).ok, true);
});

test('rotation renames path → .1 → .2 and the chain continues across files', async () => {
  const d = await dir();
  const path = join(d, 'audit.log');
  const log = await openAuditLog({ path, maxBytes: 2000, maxFiles: 50 });
  for (let i = 1; i <= 60; i++) log.write(rec(i));
  await log.close();
  const files = (await readdir(d)).sort();
  assert.ok(files.length >= 4, `expected several rotated files, got ${files.join(',')}`);
  // Oldest first: audit.log.N … audit.log.1, audit.log.
  const ordered = files.map((f) => join(d, f)).sort((a, b) => suffix(b) - suffix(a));
  let expected = 1;
  let prev = GENESIS_PREV;
  for (const f of ordered) {
    assert.ok((await stat(f)).size <= 2000, `${f} stays under maxBytes`);
    for (const l of await parsed(f)) {
      assert.equal(l.seq, expected++);
      assert.equal(l.prev, prev, 'first record of a new file points at the last of the old one');
      prev = l.hash;
    }
  }
  assert.equal(expected, 61);
  const shuffled = [...ordered].reverse();
  const v = await verifyAuditFiles(shuffled);
  assert.equal(v.ok, true, 'verify accepts the files in any order');
  assert.equal(v.records, 60);
});

function suffix(f: string): number {
  const m = /\.log\.(\d+)$/.exec(f);
  return m === null ? 0 : Number(m[1]);
}

test('maxFiles drops the oldest file; the rest still verifies but does not start at genesis', async () => {
  const d = await dir();
  const path = join(d, 'audit.log');
  const log = await openAuditLog({ path, maxBytes: 1500, maxFiles: 2 });
  for (let i = 1; i <= 40; i++) log.write(rec(i));
  await log.close();
  assert.deepEqual((await readdir(d)).sort(), ['audit.log', 'audit.log.1', 'audit.log.2']);
  const v = await verifyAuditFiles([path, `${path}.1`, `${path}.2`]);
  assert.equal(v.ok, true);
  assert.equal(v.startsAtGenesis, false);
  assert.equal(v.last?.seq, 40);
});

test('reopen after a crash between rotation and the new file continues from path.1', async () => {
  const path = join(await dir(), 'audit.log');
  const log = await openAuditLog({ path });
  for (let i = 1; i <= 3; i++) log.write(rec(i));
  await log.close();
  await rename(path, `${path}.1`);
  const log2 = await openAuditLog({ path });
  log2.write(rec(4));
  await log2.close();
  const [first] = await parsed(path);
  assert.equal(first?.seq, 4);
  assert.equal((await verifyAuditFiles([path, `${path}.1`])).ok, true);
});

test('reopen refuses a log whose last line is truncated or tampered (fail closed)', async () => {
  const d = await dir();
  const path = join(d, 'audit.log');
  const log = await openAuditLog({ path });
  log.write(rec(1));
  log.write(rec(2));
  await log.close();
  const good = await readFile(path, 'utf8');

  await writeFile(path, good.slice(0, -20));
  await assert.rejects(openAuditLog({ path }), (e: unknown) => isTurretError(e) && /incomplete line/.test(e.reason));

  await writeFile(path, good.replace('/items/2?page=', '/items/9?page='));
  await assert.rejects(openAuditLog({ path }), (e: unknown) => isTurretError(e) && /does not match its hash/.test(e.reason));

  await writeFile(path, `${good}not json\n`);
  await assert.rejects(openAuditLog({ path }), (e: unknown) => isTurretError(e) && /malformed/.test(e.reason));
  assert.equal(await readFile(path, 'utf8'), `${good}not json\n`, 'a refused log is left untouched');
});

test('a failed rotation is reported and nothing is lost', async () => {
  const d = await dir();
  const path = join(d, 'audit.log');
  const errors: Error[] = [];
  const log = await openAuditLog({ path, maxBytes: 600, maxFiles: 1, onError: (e) => errors.push(e) });
  // A non-empty directory where path.1 should go makes the rename fail.
  await mkdir(`${path}.1`);
  await writeFile(join(`${path}.1`, 'x'), 'x');
  for (let i = 1; i <= 20; i++) log.write(rec(i));
  await log.close();
  assert.ok(errors.length >= 1);
  assert.ok(errors.length < 20, 'no retry storm: rotation is retried only after another maxBytes');
  const v = await verifyAuditFiles([path]);
  assert.equal(v.ok, true);
  assert.equal(v.records, 20);
});

test('a failed append is reported, and close() rejects so shutdown knows records were lost', async () => {
  // /dev/full accepts open and fails every write with ENOSPC (Linux).
  const errors: Error[] = [];
  const log = await openAuditLog({ path: '/dev/full', onError: (e) => errors.push(e) });
  log.write(rec(1));
  await log.flush();
  assert.equal((errors[0] as NodeJS.ErrnoException | undefined)?.code, 'ENOSPC');
  await assert.rejects(log.close(), (e: unknown) => (e as NodeJS.ErrnoException).code === 'ENOSPC');
});

test('no scrubbed value reaches the file; unknown fields never do', async () => {
  const path = join(await dir(), 'audit.log');
  const fake = `ghp_${randomBytes(18).toString('hex')}`;
  const log = await openAuditLog({ path, scrub: (r) => ({ ...r, reason: r.reason?.replaceAll(fake, '[redacted:github]') }) });
  log.write({ ...rec(1), reason: `upstream echoed ${fake}`, path: `/x?token=${fake}`, headers: { authorization: fake } } as AuditRecord);
  await log.close();
  const text = await readFile(path, 'utf8');
  assert.ok(!text.includes(fake));
  assert.ok(text.includes('[redacted:github]'));
});

test('invalid sizes are refused at open', async () => {
  const path = join(await dir(), 'audit.log');
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    await assert.rejects(openAuditLog({ path, maxBytes: bad }), (e: unknown) => isTurretError(e));
    await assert.rejects(openAuditLog({ path, maxFiles: bad }), (e: unknown) => isTurretError(e));
  }
});
