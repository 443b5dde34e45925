/**
 * A full audit disk in production (docs/operations.md: "from the first failed write on, every
 * request is answered 503 proxy_unavailable, /readyz turns 503 with audit_failure, and it stays so
 * until a restart"). The disk is a real 64 KiB tmpfs filled to its last byte (needs root, like
 * faults-audit.test.ts). Also: the refusals are themselves audited once space is back (each
 * exchange one record, in order, with its real cause), the file never holds a torn line, and verify shows the
 * lost records as a gap.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { curl } from '../helpers/curl.js';
import { adminPort, httpGet } from '../helpers/ops.js';
import { runCli, startTurret, type TurretProc } from '../helpers/turret.js';

const RULES = 'agents:\n  - name: agent-a\nrules:\n  - { name: r, methods: [read], hosts: ["allowed.test"] }\n';
let mnt: string;
const procs: TurretProc[] = [];
before(() => {
  mnt = mkdtempSync(path.join(tmpdir(), 'turret-full-prod-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
});
after(async () => {
  for (const t of procs) await t.stop();
  execFileSync('umount', [mnt]);
  rmSync(mnt, { recursive: true, force: true });
});

it('production with a full audit disk: 503 from the first failed append on, still after space is back; the refusals are audited', { timeout: 60_000 }, async () => {
  const audit = path.join(mnt, 'audit.jsonl');
  const t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--production', '--audit', audit, '--no-watch'] });
  procs.push(t);
  const token = /HTTP_PROXY='http:\/\/agent-a:([^@]+)@/.exec((await t.cli(['env', '--agent', 'agent-a'])).stdout)?.[1] ?? '';
  let sent = 0;
  const request = async (): Promise<number> => {
    sent += 1;
    return (await curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `agent-a:${token}`, `http://denied.test/n${sent}`])).status;
  };
  const readyz = async (): Promise<{ status: number; failure: string | null }> => {
    const r = await httpGet(adminPort(t), '/readyz');
    return { status: r.status, failure: (JSON.parse(r.body) as { audit_failure: string | null }).audit_failure };
  };
  assert.equal(await request(), 403);
  assert.equal((await readyz()).status, 200);
  const filler = path.join(mnt, 'filler');
  for (const size of [4096, 512, 64, 1]) {
    for (;;) {
      try {
        writeFileSync(filler, Buffer.alloc(size, 0x61), { flag: 'a' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        break;
      }
    }
  }
  // Requests until one is refused because an append failed (bounded); none after it is served.
  let status = 0;
  for (let i = 0; i < 100 && status !== 503; i++) status = await request();
  assert.equal(status, 503, 'traffic was still served with a full audit disk');
  const r1 = await readyz();
  assert.equal(r1.status, 503);
  assert.match(r1.failure ?? '', /ENOSPC|no space/i);
  assert.match(t.stderr(), /"msg":"audit write failed"/);
  // Space again: records land again ("audit writes resumed"), yet production still refuses.
  rmSync(filler);
  for (let i = 0; i < 100 && !/"msg":"audit writes resumed"/.test(t.stderr()); i++) assert.equal(await request(), 503);
  assert.match(t.stderr(), /"msg":"audit writes resumed"/);
  assert.equal(await request(), 503);
  assert.equal((await readyz()).status, 503);
  const last = sent;
  await t.stop();
  const text = readFileSync(audit, 'utf8');
  assert.ok(text.endsWith('\n'), 'the file ends with a complete line');
  const recs = text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { seq: number; path: string; code?: string; status?: number });
  // One record per exchange, in request order: request K is seq K (the records lost to the full
  // disk are a gap); the refusals after space came back are there with their real cause (refused
  // before the request was read, so they name no target).
  assert.equal(new Set(recs.map((r) => r.seq)).size, recs.length, 'no record twice');
  for (const r of recs) if (r.path !== undefined) assert.equal(r.path, `/n${r.seq}`);
  const end = recs.at(-1)!;
  assert.equal(end.seq, last);
  assert.equal(end.code, 'proxy_unavailable');
  assert.equal(end.status, 503);
  assert.ok(recs.length < last, 'some records were lost to the full disk');
  const v = await runCli(['audit', 'verify', audit]);
  assert.notEqual(v.code, 0);
  assert.match(v.stdout + v.stderr, /seq jumps from \d+ to \d+/);
  assert.doesNotMatch(v.stdout + v.stderr, /malformed/);
});
