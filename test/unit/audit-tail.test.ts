import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openAuditLog, tailAudit } from '../../src/audit/chain.js';
import type { AuditOutcome, AuditRecord } from '../../src/audit/record.js';
import { isTurretError } from '../../src/core/errors.js';

const root = await mkdtemp(join(tmpdir(), 'turret-audit-tail-'));
after(() => rm(root, { recursive: true, force: true }));
let n = 0;
const fresh = async (): Promise<string> => join(await mkdtemp(join(root, `${++n}-`)), 'audit.log');

const rec = (agent: string | null, outcome: AuditOutcome, i: number, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  time: `2026-01-01T00:00:00.${String(i).padStart(3, '0')}Z`,
  event: 'request',
  outcome,
  agent,
  path: `/n/${i}`,
  ...extra,
});

// Every follow-mode tail is aborted at the end even if its test failed, so the run cannot hang.
const controllers: AbortController[] = [];
after(() => controllers.forEach((c) => c.abort()));
const controller = (): AbortController => {
  const c = new AbortController();
  controllers.push(c);
  return c;
};

const pathsOf = (lines: string[]): unknown[] => lines.map((l) => (JSON.parse(l) as { path: unknown }).path);

/** Counts the tailer's passes over the file; `passes(n)` waits until n more have finished. */
function passCounter(): { onPass: () => void; passes: (n: number) => Promise<void> } {
  let count = 0;
  return {
    onPass: () => {
      count++;
    },
    passes: async (n) => {
      const target = count + n;
      await until(() => count >= target);
    },
  };
}

/** Waits until `cond` holds, polling; fails the test after `ms` instead of hanging. */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for tail output');
    await sleep(10);
  }
}

test('tail without follow prints every line as written, then returns', async () => {
  const path = await fresh();
  const log = await openAuditLog({ path });
  for (let i = 1; i <= 5; i++) log.write(rec('a', 'completed', i));
  await log.close();
  const out: string[] = [];
  await tailAudit({ path, follow: false, out: (l) => out.push(l) });
  assert.equal(out.length, 5);
  assert.ok(out.every((l) => !l.endsWith('\n') && l.includes('"hash":"')));
  assert.deepEqual(pathsOf(out), ['/n/1', '/n/2', '/n/3', '/n/4', '/n/5']);
});

test('filters match the fields, not text that merely looks like them', async () => {
  const path = await fresh();
  const log = await openAuditLog({ path });
  log.write(rec('alice', 'denied', 1));
  log.write(rec('bob', 'denied', 2, { reason: '"agent":"alice" "outcome":"denied"' }));
  log.write(rec('alice', 'completed', 3));
  log.write(rec(null, 'denied', 4, { host: 'alice' }));
  log.write(rec('alice2', 'denied', 5));
  await log.close();
  await appendFile(path, 'not json but mentions alice and denied\n');

  const run = async (o: { agent?: string; decision?: string }): Promise<unknown[]> => {
    const out: string[] = [];
    await tailAudit({ path, follow: false, ...o, out: (l) => out.push(l) });
    return pathsOf(out);
  };
  assert.deepEqual(await run({ agent: 'alice' }), ['/n/1', '/n/3']);
  assert.deepEqual(await run({ decision: 'denied' }), ['/n/1', '/n/2', '/n/4', '/n/5']);
  assert.deepEqual(await run({ agent: 'alice', decision: 'denied' }), ['/n/1']);
  assert.deepEqual(await run({ agent: 'nobody' }), []);
});

test('an unknown decision is a usage error; a missing file without follow rejects', async () => {
  const path = await fresh();
  await writeFile(path, '');
  await assert.rejects(tailAudit({ path, follow: false, decision: 'allow', out: () => {} }), (e: unknown) => isTurretError(e) && e.code === 'bad_request');
  await assert.rejects(tailAudit({ path: `${path}.nope`, follow: false, out: () => {} }), { code: 'ENOENT' });
});

test('follow prints new lines, holds back a partial line, and stops on abort', async () => {
  const path = await fresh();
  const log = await openAuditLog({ path });
  log.write(rec('a', 'completed', 1));
  await log.flush();
  const out: string[] = [];
  const ac = controller();
  const pc = passCounter();
  const done = tailAudit({ path, follow: true, pollMs: 10, signal: ac.signal, onPass: pc.onPass, out: (l) => out.push(l) });
  await until(() => out.length === 1);
  log.write(rec('a', 'denied', 2));
  log.write(rec('a', 'completed', 3));
  await log.close();
  await until(() => out.length === 3);

  // A line being written in two pieces appears once, whole.
  await appendFile(path, '{"partial":');
  await pc.passes(2); // a whole pass began after the append
  assert.equal(out.length, 3);
  await appendFile(path, 'true}\n');
  await until(() => out.length === 4);
  assert.equal(out[3], '{"partial":true}');

  ac.abort();
  await done;
  assert.deepEqual(pathsOf(out.slice(0, 3)), ['/n/1', '/n/2', '/n/3']);
});

test('follow survives rotation without losing or doubling a line, with filters', async () => {
  const path = await fresh();
  const log = await openAuditLog({ path, maxBytes: 700, maxFiles: 20 });
  const out: string[] = [];
  const ac = controller();
  const pc = passCounter();
  const done = tailAudit({ path, follow: true, agent: 'a', pollMs: 5, signal: ac.signal, onPass: pc.onPass, out: (l) => out.push(l) });
  const want: string[] = [];
  for (let i = 1; i <= 40; i++) {
    const agent = i % 4 === 0 ? 'b' : 'a';
    log.write(rec(agent, 'completed', i));
    if (agent === 'a') want.push(`/n/${i}`);
    if (i % 5 === 0) {
      await log.flush();
      await pc.passes(1); // the poller sees some rotations mid-stream
    }
  }
  await log.close();
  try {
    await until(() => out.length >= want.length);
    await pc.passes(2); // a line printed twice would come out in a later pass
  } finally {
    ac.abort();
    await done;
  }
  assert.deepEqual(pathsOf(out), want);
});

test('follow catches up on several rotations that happen between two polls', async () => {
  const path = await fresh();
  const log = await openAuditLog({ path, maxBytes: 500, maxFiles: 50 });
  log.write(rec('a', 'completed', 0));
  await log.flush();
  const out: string[] = [];
  const ac = controller();
  const done = tailAudit({ path, follow: true, pollMs: 150, signal: ac.signal, out: (l) => out.push(l) });
  await until(() => out.length === 1);
  // Written and rotated several times well inside one poll interval.
  for (let i = 1; i <= 30; i++) log.write(rec('a', 'completed', i));
  await log.flush();
  await until(() => out.length >= 31);
  // A sentinel written after the burst was seen: any line a later poll emitted again (a rotated
  // file read twice) would come out before it, so no fixed wait is needed to see duplicates.
  log.write(rec('a', 'completed', 31));
  await log.close();
  await until(() => out.some((l) => l.includes('/n/31')));
  ac.abort();
  await done;
  assert.deepEqual(
    pathsOf(out),
    Array.from({ length: 32 }, (_, i) => `/n/${i}`),
  );
});

test('follow waits for a file that does not exist yet; an already-aborted signal returns at once', async () => {
  const path = await fresh();
  const out: string[] = [];
  const ac = controller();
  const pc = passCounter();
  const done = tailAudit({ path, follow: true, pollMs: 10, signal: ac.signal, onPass: pc.onPass, out: (l) => out.push(l) });
  await pc.passes(2); // the tailer has polled while the file did not exist
  const log = await openAuditLog({ path });
  log.write(rec('a', 'allowed', 1, { event: 'tunnel_open' }));
  await log.close();
  await until(() => out.length === 1);
  ac.abort();
  await done;

  const pre = new AbortController();
  pre.abort();
  await tailAudit({ path: `${path}.never`, follow: true, signal: pre.signal, out: () => assert.fail('no output') });
});
