/**
 * Real clients started through `turret run`: curl, git (clone and push with a Basic-auth handle
 * against git http-backend), Python's urllib and a Node program. Each gets handles issued for
 * the run; the upstream must receive the real secret, the client must only ever see handles,
 * and once the run exits its handles are revoked. Every output is grepped for the secrets.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { curl } from '../helpers/curl.js';
import { startGitServer, type GitServer } from '../helpers/git-server.js';
import { assertNoSecrets, cleanEnv, ROOT, runArgs, runCli, startTurret, turretOutputs, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const API = `fake_api_${randomBytes(18).toString('hex')}`;
const GIT = `fake_git_${randomBytes(18).toString('hex')}`;

const rules = (): RuleFile => ({
  agents: ['runner'],
  secrets: [
    { name: 'api-token', from: { env: 'TEST_API_TOKEN' }, hosts: ['echo.turret.test:*'], env: 'API_TOKEN' },
    { name: 'git-token', from: { env: 'TEST_GIT_TOKEN' }, hosts: ['git.turret.test:*'], env: 'GIT_TOKEN' },
  ],
  rules: [{ name: 'test-hosts', methods: ['read', 'write'], hosts: ['echo.turret.test:*', 'git.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['echo.turret.test', 'git.turret.test'],
});

describe('clients started through turret run', () => {
  let t: TurretProc;
  let up: Upstream;
  let gitServer: GitServer;
  const outputs: string[] = [];
  const work = mkdtempSync(path.join(tmpdir(), 'turret-run-'));
  chmodSync(work, 0o777); // turret run (root) runs the command as nobody, in a sandbox

  const turretRun = async (cmd: string[], extra: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> => {
    const pass = ['--pass-env', 'GIT_TERMINAL_PROMPT,GIT_CONFIG_NOSYSTEM']; // the environment is an allow-list
    const r = await runCli(runArgs(t, 'runner', [...pass, ...extra], cmd), {
      cwd: work,
      env: cleanEnv({ TEST_API_TOKEN: API, TEST_GIT_TOKEN: GIT, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: work }),
    });
    outputs.push(r.stdout, r.stderr);
    return r;
  };

  before(async () => {
    up = await startUpstream();
    gitServer = await startGitServer({ user: 'x-access-token', password: GIT });
    t = await startTurret({ rules: { 'r.yaml': rules() }, env: { TEST_API_TOKEN: API, TEST_GIT_TOKEN: GIT, TURRET_ADMIN: 'off' } });
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    await gitServer?.close();
    assertNoSecrets([['client outputs', outputs.join('\n')], ...turretOutputs(t)], { 'the API secret': API, 'the git secret': GIT });
  });

  it('curl: Bearer handle from the environment; the handle dies with the run', async () => {
    const r = await turretRun(['sh', '-c', `printf %s "$API_TOKEN" > handle.txt; curl -sS -H "Authorization: Bearer $API_TOKEN" https://echo.turret.test:${up.port}/curl`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(up.received.at(-1)?.headers.authorization, `Bearer ${API}`);
    const handle = readFileSync(path.join(work, 'handle.txt'), 'utf8');
    assert.match(handle, /^trt_/);
    assert.ok(r.stdout.includes(handle), 'the echoed secret comes back as the handle');
    const rec = await waitForAudit(t, (x) => x.path === '/curl' && x.outcome === 'completed');
    assert.deepEqual(rec?.secrets, ['api-token']);
    // After the run: the same handle, from the same agent, is revoked.
    const env = await t.cli(['env', '--agent', 'runner']);
    const token = /HTTPS_PROXY='http:\/\/runner:([^@]+)@/.exec(env.stdout)?.[1] ?? '';
    const after = await curl([
      '-x',
      `http://127.0.0.1:${t.port}`,
      '--proxy-user',
      `runner:${token}`,
      '--cacert',
      path.join(t.caDir, 'ca.crt'),
      '-H',
      `Authorization: Bearer ${handle}`,
      `https://echo.turret.test:${up.port}/after`,
    ]);
    outputs.push(after.raw);
    assert.equal(after.status, 403);
    assert.equal(after.headers['x-turret-error'], 'handle_revoked');
    const list = await t.cli(['handle', 'list', '--all']);
    assert.match(list.stdout, /runner\tapi-token\t.*\trevoked\trun/);
  });

  it('git: clone and push over HTTPS with a Basic-auth handle', async () => {
    const url = `https://x-access-token:$GIT_TOKEN@git.turret.test:${gitServer.port}/repo.git`;
    const script = [
      `git clone -q "${url}" clone`,
      'cd clone',
      'git -c user.name=t -c user.email=t@example.invalid commit -q --allow-empty -m pushed-through-turret',
      'git push -q origin HEAD:main',
      'cat README.md',
    ].join(' && ');
    const r = await turretRun(['sh', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from the test repo/);
    const expected = `Basic ${Buffer.from(`x-access-token:${GIT}`).toString('base64')}`;
    assert.ok(gitServer.auths.includes(expected), 'the git server received the real password');
    assert.ok(
      gitServer.auths.every((a) => !Buffer.from(a.slice(6), 'base64').toString().includes('trt_')),
      'no handle reached the git server',
    );
    assert.match(execFileSync('git', ['--git-dir', path.join(gitServer.root, 'repo.git'), 'log', '-1', '--format=%s', 'main'], { encoding: 'utf8' }), /pushed-through-turret/);
  });

  it('Python urllib: proxy and CA from the environment, token header from a handle', async () => {
    const py = path.join(work, 'client.py');
    writeFileSync(
      py,
      `import os, urllib.request
req = urllib.request.Request("https://echo.turret.test:${up.port}/python", headers={"Authorization": "Bearer " + os.environ["API_TOKEN"]})
print(urllib.request.urlopen(req, timeout=20).read().decode())
`,
    );
    const r = await turretRun(['python3', py]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(up.received.at(-1)?.url, '/python');
    assert.equal(up.received.at(-1)?.headers.authorization, `Bearer ${API}`);
  });

  it('Node: undici EnvHttpProxyAgent with NODE_EXTRA_CA_CERTS, POST with a token header', async () => {
    const js = path.join(work, 'client.mjs');
    writeFileSync(
      js,
      `import { EnvHttpProxyAgent, request } from ${JSON.stringify(path.join(ROOT, 'node_modules/undici/index.js'))};
const r = await request("https://echo.turret.test:${up.port}/node", { method: "POST", dispatcher: new EnvHttpProxyAgent(), headers: { authorization: "token " + process.env.API_TOKEN, "content-type": "application/json" }, body: JSON.stringify({ hello: "world" }) });
console.log(r.statusCode, await r.body.text());
`,
    );
    const r = await turretRun([process.execPath, js]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^200 /);
    assert.equal(up.received.at(-1)?.headers.authorization, `token ${API}`);
    assert.equal(up.received.at(-1)?.body, '{"hello":"world"}');
  });

  it('passes the exit code through, 127 for a missing program, and refuses a run without a command', async () => {
    assert.equal((await turretRun(['sh', '-c', 'exit 7'])).code, 7);
    assert.equal((await turretRun(['/nonexistent/turret-test-program'])).code, 127);
    const r = await runCli(['run', '--agent', 'runner', '--rules', t.rulesDir, '--ca', t.caDir]);
    assert.equal(r.code, 2);
  });
});
