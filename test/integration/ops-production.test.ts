/**
 * `turret start --production` on real files: each insecure setup exits 2 before anything listens,
 * naming the problem and the fix; development mode starts with the same setup and warns; a
 * secure setup starts in production mode.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { curl } from '../helpers/curl.js';
import { cleanEnv, makeDirs, runCli, startTurret, type TurretProc } from '../helpers/turret.js';

const RULES = 'agents:\n  - name: agent-a\nrules:\n  - { name: r, methods: [read], hosts: ["example.test"] }\n';
const TOKEN = randomBytes(24).toString('hex');

/** A rules dir with an initialised CA; returns the start arguments (exits quickly on refusal). */
async function setup(rules = RULES): Promise<{ dir: string; args: string[]; caDir: string }> {
  const d = makeDirs({ 'r.yaml': rules });
  const init = await runCli(['ca', 'init', '--dir', d.caDir], { cwd: d.dir });
  assert.equal(init.code, 0, init.stderr);
  const args = ['start', '--rules', d.rulesDir, '--ca', d.caDir, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--audit', path.join(d.dir, 'audit.jsonl'), '--no-watch'];
  return { dir: d.dir, args, caDir: d.caDir };
}

async function refusal(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<string> {
  const r = await runCli(args, { cwd, env: cleanEnv(env) });
  assert.equal(r.code, 2, `exit 2 expected, got ${r.code}:\n${r.stderr}`);
  assert.ok(!r.stderr.includes('turret started'), 'nothing listened');
  return r.stderr;
}

describe('production mode', () => {
  const procs: TurretProc[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const p of procs) await p.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('refuses a CA key readable by others, naming the file and chmod', async () => {
    const s = await setup();
    dirs.push(s.dir);
    chmodSync(path.join(s.caDir, 'ca.key'), 0o644);
    const err = await refusal([...s.args, '--production']);
    assert.match(err, /CA key .*ca\.key is accessible to group or others \(mode 644\); fix: chmod 600 /);
  });

  it('refuses the admin listener beyond loopback without a token (TURRET_PRODUCTION=1)', async () => {
    const s = await setup();
    dirs.push(s.dir);
    const err = await refusal([...s.args, '--admin', '0.0.0.0:0'], { TURRET_PRODUCTION: '1' });
    assert.match(err, /admin listener 0\.0\.0\.0:0 is beyond loopback without a token; fix: set --admin-token-file/);
  });

  it('refuses the proxy beyond loopback when an agent has no usable credential', async () => {
    const s = await setup('agents:\n  - name: agent-a\n    token: { env: TEST_PROD_AGENT_TOKEN_UNSET }\nrules: []\n');
    dirs.push(s.dir);
    const err = await refusal([...s.args, '--listen', '0.0.0.0:0', '--production']);
    assert.match(err, /beyond loopback and agent\(s\) agent-a have no usable credential/);
  });

  it('refuses --audit off', async () => {
    const s = await setup();
    dirs.push(s.dir);
    const err = await refusal([...s.args, '--audit', 'off', '--production']);
    assert.match(err, /audit log is off .*; fix: give --audit FILE/);
  });

  it('refuses a default store key without printing it; a malformed one is refused in every mode', async () => {
    const s = await setup();
    dirs.push(s.dir);
    const zeros = Buffer.alloc(32).toString('base64');
    const err = await refusal([...s.args, '--production'], { TURRET_STORE_KEY: zeros });
    assert.match(err, /TURRET_STORE_KEY is a placeholder or low-entropy value; fix: generate one with: openssl rand -base64 32/);
    assert.ok(!err.includes(zeros));
    const dev = await refusal(s.args, { TURRET_STORE_KEY: 'changeme' });
    assert.match(dev, /TURRET_STORE_KEY must be 32 bytes in base64; generate one/);
    assert.ok(!dev.includes('changeme'));
  });

  it('a secret value inline in a rule file is refused in every mode (the rule loader)', async () => {
    const s = await setup('agents:\n  - name: a\nsecrets:\n  - { name: s, from: { value: fake-inline-value }, hosts: [a.test] }\nrules: []\n');
    dirs.push(s.dir);
    for (const extra of [['--production'], []]) {
      const err = await refusal([...s.args, ...extra]);
      assert.match(err, /secrets\[0\]\.from\.value: secret values must not be written in rule files/);
      assert.ok(!err.includes('fake-inline-value'));
    }
  });

  it('lists every problem at once', async () => {
    const s = await setup();
    dirs.push(s.dir);
    chmodSync(path.join(s.caDir, 'turret.key'), 0o640);
    const err = await refusal([...s.args, '--production', '--audit', 'off', '--admin', '0.0.0.0:0']);
    assert.equal(err.split('\n').filter((l) => l.startsWith('  - ')).length, 3, err);
  });

  it('development mode starts with the same setup and warns', async () => {
    const t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--admin', '0.0.0.0:0', '--audit', 'off'] });
    procs.push(t);
    assert.match(t.stderr(), /"mode":"development"/);
    assert.match(t.stderr(), /"level":"warn","msg":"insecure setup \(production mode would refuse to start\)","problem":"the admin listener 0\.0\.0\.0:0/);
    assert.match(t.stderr(), /"problem":"the audit log is off/);
    assert.match(t.stderr(), /"audit":"off"/);
  });

  it('a secure setup starts in production mode', async () => {
    const s = await setup();
    dirs.push(s.dir);
    const tokenFile = path.join(s.dir, 'admin.token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--production', '--admin', '0.0.0.0:0', '--admin-token-file', tokenFile] });
    procs.push(t);
    assert.match(t.stderr(), /"admin":"0\.0\.0\.0:\d+","admin_auth":"bearer","mode":"production"/);
    assert.ok(!t.stderr().includes('"level":"warn"'), t.stderr());
    assert.ok(!t.stderr().includes(TOKEN));
  });

  it('in production, an audit log that cannot be written stops all traffic (503) and readiness says why', async () => {
    // /dev/full accepts the open and fails every write with ENOSPC, like a full disk.
    const t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--production', '--audit', '/dev/full', '--no-watch'] });
    procs.push(t);
    const env = await t.cli(['env', '--agent', 'agent-a']);
    const token = /HTTP_PROXY='http:\/\/agent-a:([^@]+)@/.exec(env.stdout)?.[1] ?? '';
    const adminPort = Number(/"admin":"127\.0\.0\.1:(\d+)"/.exec(t.stderr())?.[1]);
    const proxied = () => curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `agent-a:${token}`, 'http://example.test/']);
    await proxied(); // its audit record is the first write that fails
    let r = await proxied();
    for (let i = 0; i < 40 && r.status !== 503; i++) {
      await new Promise((res) => setTimeout(res, 50));
      r = await proxied();
    }
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-turret-error'], 'proxy_unavailable');
    assert.match(r.body, /audit log cannot be written/);
    const ready = await curl([`http://127.0.0.1:${adminPort}/readyz`]);
    assert.equal(ready.status, 503);
    const body = JSON.parse(ready.body) as { checks: { audit: boolean }; audit_failure: string };
    assert.equal(body.checks.audit, false);
    assert.match(body.audit_failure, /ENOSPC/);
  });
});
