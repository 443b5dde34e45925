/**
 * The audit writer under disk faults (issue #13): a full disk never leaves a torn line (a partial
 * append is cut back to the last complete record), so `turret audit verify` shows the gap with its
 * bounds instead of "malformed" and a restart works; development readiness recovers once writes
 * succeed again. An audit directory deleted under traffic in production mode stops traffic (503).
 * The disk is a real 64 KiB tmpfs (needs root, like the netns tests; unmounted in after()).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { curl } from '../helpers/curl.js';
import { adminPort, httpGet } from '../helpers/ops.js';
import { runCli, startTurret, type TurretProc } from '../helpers/turret.js';

const RULES = 'agents:\n  - name: agent-a\nrules:\n  - { name: r, methods: [read], hosts: ["allowed.test"] }\n';

describe('audit writer faults', () => {
  let mnt: string;
  const procs: TurretProc[] = [];

  before(() => {
    mnt = mkdtempSync(path.join(tmpdir(), 'turret-tmpfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
  });
  after(async () => {
    for (const t of procs) await t.stop();
    execFileSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });

  /** A request Turret refuses (403): each one is an audit record, no upstream needed. */
  const refused = async (t: TurretProc, token: string): Promise<number> =>
    (await curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `agent-a:${token}`, 'http://denied.test/'])).status;
  const tokenOf = async (t: TurretProc): Promise<string> => /HTTP_PROXY='http:\/\/agent-a:([^@]+)@/.exec((await t.cli(['env', '--agent', 'agent-a'])).stdout)?.[1] ?? '';
  const ready = async (t: TurretProc): Promise<number> => (await httpGet(adminPort(t), '/readyz')).status;
  /** Sends refused requests until `ok()` (bounded); each one gives the writer a batch to try. */
  const until = async (t: TurretProc, token: string, ok: () => Promise<boolean>, what: string): Promise<void> => {
    for (let i = 0; i < 100; i++) {
      if (await ok()) return;
      await refused(t, token);
    }
    assert.fail(what);
  };

  it('a full disk leaves a gap, not a torn line; readiness recovers when space is back; verify and a restart work', async () => {
    const audit = path.join(mnt, 'audit.jsonl');
    const t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--audit', audit, '--no-watch'] });
    procs.push(t);
    const token = await tokenOf(t);
    for (let i = 0; i < 5; i++) assert.equal(await refused(t, token), 403);
    assert.equal(await ready(t), 200);
    // Fill the disk to the last byte: the next appends fail, some of them half-way.
    const filler = path.join(mnt, 'filler');
    let fill = 0;
    for (const size of [4096, 512, 64, 1]) {
      for (;;) {
        try {
          writeFileSync(filler, Buffer.alloc(size, 0x61), { flag: 'a' });
          fill += size;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
          break;
        }
      }
    }
    assert.ok(fill > 0);
    await until(t, token, async () => (await ready(t)) === 503, 'readiness never turned 503 on a full disk');
    for (let i = 0; i < 5; i++) await refused(t, token);
    assert.match(t.stderr(), /"msg":"audit write failed"/);
    // Space again: the next records land and development readiness recovers.
    rmSync(filler);
    await until(t, token, async () => (await ready(t)) === 200, 'readiness did not recover after space was freed');
    assert.match(t.stderr(), /"msg":"audit writes resumed"/);
    await t.stop();
    const text = readFileSync(audit, 'utf8');
    assert.ok(text.endsWith('\n'), 'the file ends with a complete line');
    for (const line of text.split('\n').filter(Boolean)) assert.doesNotThrow(() => JSON.parse(line), `torn line: ${line.slice(0, 80)}`);
    const v = await runCli(['audit', 'verify', audit]);
    assert.notEqual(v.code, 0);
    assert.match(v.stdout + v.stderr, /missing/);
    assert.match(v.stdout + v.stderr, /seq jumps from \d+ to \d+/);
    assert.doesNotMatch(v.stdout + v.stderr, /malformed/);
    // A restart on the same file works and continues the chain.
    const t2 = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--audit', audit, '--no-watch'] });
    procs.push(t2);
    assert.equal(await refused(t2, await tokenOf(t2)), 403);
    assert.equal(await ready(t2), 200);
  });

  it('production: the audit directory deleted under traffic stops traffic (503) and readiness says why', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'turret-auditdir-'));
    const t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--production', '--audit', path.join(dir, 'audit.jsonl'), '--no-watch'] });
    procs.push(t);
    const token = await tokenOf(t);
    assert.equal(await refused(t, token), 403);
    rmSync(dir, { recursive: true, force: true });
    await until(t, token, async () => (await refused(t, token)) === 503, 'traffic was still served after the audit directory was deleted');
    assert.match(t.stderr(), /"msg":"audit write failed","error":"audit log [^"]* is gone|was deleted/);
    const r = await httpGet(adminPort(t), '/readyz');
    assert.equal(r.status, 503);
    assert.match(JSON.parse(r.body).audit_failure, /deleted|gone/);
  });
});
