/**
 * The audit CLI on a log a real turret wrote: `audit verify` accepts it and catches a modified,
 * a deleted and a reordered record (exit 1, file:line); `audit tail` filters by agent and
 * decision and, with --follow, prints records as the running proxy writes them, then exits 0 on
 * SIGINT. No secret value is in the log.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { curl } from '../helpers/curl.js';
import { agentToken } from '../helpers/ops.js';
import { cleanEnv, MAIN, runCli, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const SECRET = `fake_audit_${randomBytes(18).toString('hex')}`;
const RULES: RuleFile = {
  agents: ['agent-a', 'agent-b'],
  secrets: [{ name: 'audit-token', from: { env: 'TEST_AUDIT_TOKEN' }, hosts: ['echo.turret.test:*'] }],
  rules: [{ name: 'echo', methods: ['read'], hosts: ['echo.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['echo.turret.test'],
};

describe('audit CLI', () => {
  let t: TurretProc;
  let up: Upstream;
  let px: (agent: string) => string[];
  let lines: string[];

  before(async () => {
    up = await startUpstream();
    t = await startTurret({ rules: { 'a.yaml': RULES }, env: { TEST_AUDIT_TOKEN: SECRET } });
    const tokens = { 'agent-a': await agentToken(t, 'agent-a'), 'agent-b': await agentToken(t, 'agent-b') };
    px = (agent) => ['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `${agent}:${tokens[agent as 'agent-a']}`, '--cacert', path.join(t.caDir, 'ca.crt')];
    const handle = (await t.cli(['handle', 'issue', '--agent', 'agent-a', '--secret', 'audit-token'])).stdout.trim();
    assert.equal((await curl([...px('agent-a'), '-H', `Authorization: Bearer ${handle}`, `https://echo.turret.test:${up.port}/one`])).status, 200);
    assert.equal((await curl([...px('agent-a'), '-X', 'POST', '-d', 'x', `https://echo.turret.test:${up.port}/two`])).status, 403);
    assert.equal((await curl([...px('agent-b'), `https://echo.turret.test:${up.port}/three`])).status, 200);
    assert.ok(await waitForAudit(t, (r) => r.event === 'request' && r.path === '/three'));
    // Each curl's tunnel_close lands after its request record: wait for all three, so the copy
    // below is the whole log and later tests compare against a log that no longer grows.
    for (let i = 0; i < 100 && t.audit().filter((r) => r.event === 'tunnel_close').length < 3; i++) await new Promise((res) => setTimeout(res, 50));
    lines = t.auditText().split('\n').filter(Boolean);
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  const verifyCopy = async (mutate: (l: string[]) => string[]): Promise<{ code: number; stdout: string }> => {
    const file = path.join(t.dir, `copy-${randomBytes(4).toString('hex')}.jsonl`);
    writeFileSync(file, `${mutate([...lines]).join('\n')}\n`);
    return runCli(['audit', 'verify', file]);
  };

  it('no secret value in the log', () => {
    assert.ok(lines.length >= 6, 'tunnel open/close and request records');
    assert.ok(!t.auditText().includes(SECRET));
  });

  it('verify accepts the log as written', async () => {
    const r = await runCli(['audit', 'verify', t.auditPath]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok: \d+ record\(s\), chain intact/);
    const last = JSON.parse(lines.at(-1) ?? '{}') as { seq: number; hash: string };
    assert.equal(r.stdout, `ok: ${lines.length} record(s), chain intact, seq 1 to ${last.seq}, last hash ${last.hash}\n`);
  });

  it('verify says where a chain starts when its first records are gone (rotated out, or lost before the first append)', async () => {
    const r = await verifyCopy((l) => l.slice(2));
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, /^ok: \d+ record\(s\), chain intact, seq 3 to \d+, last hash [0-9a-f]{64}; the chain starts at seq 3: records 1 to 2 were rotated out, or lost\n$/);
  });

  it('verify catches a modified record', async () => {
    const r = await verifyCopy((l) => {
      l[1] = (l[1] ?? '').replace('"agent-a"', '"agent-b"').replace('"agent-b"', '"agent-c"');
      return l;
    });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /:2: modified: /);
  });

  it('verify catches a deleted record', async () => {
    const r = await verifyCopy((l) => l.filter((_, i) => i !== 2));
    assert.equal(r.code, 1);
    assert.match(r.stdout, /:3: (missing|reordered): /);
  });

  it('verify catches a reordered record', async () => {
    const r = await verifyCopy((l) => {
      const [a, b] = [l[2] ?? '', l[3] ?? ''];
      l[2] = b;
      l[3] = a;
      return l;
    });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /:3: (reordered|missing): /);
  });

  it('tail filters by agent and decision and prints lines as written', async () => {
    const b = await runCli(['audit', 'tail', '--agent', 'agent-b', t.auditPath]);
    assert.equal(b.code, 0, b.stderr);
    const out = b.stdout.split('\n').filter(Boolean);
    assert.ok(out.length >= 1);
    assert.ok(out.every((l) => JSON.parse(l).agent === 'agent-b'));
    assert.ok(
      out.every((l) => lines.includes(l)),
      'byte-identical to the log',
    );
    const d = await runCli(['audit', 'tail', '--agent', 'agent-a', '--decision', 'denied', t.auditPath]);
    const denied = d.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(denied.length, 1, d.stdout);
    assert.equal(denied[0]?.path, '/two');
    const bad = await runCli(['audit', 'tail', '--decision', 'maybe', t.auditPath]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown decision "maybe"/);
    const missing = await runCli(['audit', 'tail', path.join(t.dir, 'nope.jsonl')]);
    assert.equal(missing.code, 2);
  });

  it('tail --follow prints new records as the proxy writes them and exits 0 on SIGINT', async () => {
    const p = spawn(process.execPath, [MAIN, 'audit', 'tail', '--follow', '--agent', 'agent-b', t.auditPath], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
    const waitFor = async (pred: () => boolean, what: string): Promise<void> => {
      const end = Date.now() + 8_000;
      while (!pred()) {
        if (Date.now() > end) {
          p.kill('SIGKILL');
          throw new Error(`tail --follow: no ${what}; got:\n${out}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    await waitFor(() => out.includes('/three'), 'existing record');
    assert.equal((await curl([...px('agent-b'), `https://echo.turret.test:${up.port}/four`])).status, 200);
    assert.equal((await curl([...px('agent-a'), `https://echo.turret.test:${up.port}/five`])).status, 200);
    await waitFor(() => out.includes('/four'), 'new record');
    p.kill('SIGINT');
    assert.equal(await exited, 0);
    assert.ok(!out.includes('/five'), 'another agent’s record is filtered out');
    assert.ok(readFileSync(t.auditPath, 'utf8').includes('/five'));
  });
});
