/**
 * Real git through Turret against a local `git http-backend` (CGI behind a small HTTPS server
 * with the committed test CA), under the shipped read-only GitHub policy (rules/github-read-only.yaml
 * with its hosts pointed at the test server): `git clone` and `git fetch` work, `git push` is
 * refused by Turret and nothing of it reaches the server, although the server itself accepts pushes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import https from 'node:https';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { agentToken, ROOT, cleanEnv, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { FIXTURES } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const BACKEND = path.join(execFileSync('git', ['--exec-path']).toString().trim(), 'git-http-backend');

interface GitServer {
  port: number;
  requests: Array<{ method: string; url: string }>;
  close(): Promise<void>;
}

/** HTTPS → CGI: one git http-backend process per request, stdin = request body. */
async function startGitServer(projectRoot: string): Promise<GitServer> {
  const requests: GitServer['requests'] = [];
  const server = https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, (req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '' });
    const u = new URL(req.url ?? '/', 'https://x');
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      REQUEST_METHOD: req.method,
      PATH_INFO: decodeURIComponent(u.pathname),
      QUERY_STRING: u.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_ADDR: '127.0.0.1',
      REMOTE_USER: 'tester',
      GIT_CONFIG_NOSYSTEM: '1',
      HOME: projectRoot,
    };
    if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding'];
    if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol']);
    const cgi = spawn(BACKEND, [], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let started = false;
    cgi.stdout.on('data', (c: Buffer) => {
      if (started) return void res.write(c);
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      started = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString().split('\r\n')) {
        const i = line.indexOf(':');
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = Number(v.split(' ')[0]);
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => (started ? res.end() : res.writeHead(500).end()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function git(args: string[], o: { cwd: string; env?: Record<string, string> }): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('git', args, { cwd: o.cwd, env: cleanEnv({ HOME: o.cwd, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', ...o.env }) });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

describe('git smart HTTP through turret under the shipped read-only GitHub policy', () => {
  let t: TurretProc;
  let srv: GitServer;
  let work: string;
  let proxyUrl: string;
  let gitEnv: Record<string, string>;
  const url = () => `https://git.turret.test:${srv.port}/repo.git`;

  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'turret-git-'));
    const id = ['-c', 'user.name=Test', '-c', 'user.email=test@example.invalid'];
    execFileSync('git', ['init', '-q', '--bare', 'repo.git'], { cwd: work });
    execFileSync('git', ['-C', 'repo.git', 'config', 'http.receivepack', 'true'], { cwd: work }); // the server would accept a push
    execFileSync('git', ['init', '-q', 'seed'], { cwd: work });
    writeFileSync(path.join(work, 'seed', 'README'), 'hello from the test repo\n');
    execFileSync('git', [...id, '-C', 'seed', 'add', 'README'], { cwd: work });
    execFileSync('git', [...id, '-C', 'seed', 'commit', '-q', '-m', 'first'], { cwd: work });
    execFileSync('git', ['-C', 'seed', 'push', '-q', '../repo.git', 'HEAD:refs/heads/main'], { cwd: work });
    execFileSync('git', ['-C', 'repo.git', 'symbolic-ref', 'HEAD', 'refs/heads/main'], { cwd: work });
    srv = await startGitServer(work);

    const shipped = readFileSync(path.join(ROOT, 'rules/github-read-only.yaml'), 'utf8');
    const policy = shipped
      .replace(/\bgithub\.com\b/g, '"git.turret.test:*"')
      .replace(/\bapi\."git/g, '"api.git')
      .replace(/codeload\."git/g, '"codeload.git');
    assert.match(policy, /"git\.turret\.test:\*"/);
    const test: RuleFile = {
      agents: ['agent-a'],
      rules: [
        { include: 'github-read-only', agents: ['agent-a'] },
        { name: 'test-server-address', methods: ['HEAD'], hosts: ['git.turret.test:*'], unsafe_addresses: LOOPBACK },
      ],
      local: ['git.turret.test'],
    };
    t = await startTurret({ rules: { 'github-read-only.yaml': policy, 'test.yaml': test } });
    const token = await agentToken(t, 'agent-a');
    proxyUrl = `http://agent-a:${token}@127.0.0.1:${t.port}`;
    gitEnv = { GIT_SSL_CAINFO: path.join(t.caDir, 'ca.crt') };
  });

  after(async () => {
    await t?.stop();
    await srv?.close();
  });

  it('git clone works through the proxy', async () => {
    const r = await git(['-c', `http.proxy=${proxyUrl}`, 'clone', url(), 'clone'], { cwd: work, env: gitEnv });
    assert.equal(r.code, 0, r.out);
    assert.equal(readFileSync(path.join(work, 'clone', 'README'), 'utf8'), 'hello from the test repo\n');
    assert.ok(
      srv.requests.some((q) => q.method === 'POST' && q.url.endsWith('/git-upload-pack')),
      'the fetch POST reached the server',
    );
    const rec = await waitForAudit(t, (x) => x.method === 'POST' && String(x.path).endsWith('/git-upload-pack') && x.outcome === 'completed');
    assert.match(String(rec?.rule), /github-read-only\.yaml:\d+$/, 'decided by the shipped policy');
  });

  it('git fetch works, and git push is refused by turret before anything reaches the server', async () => {
    const clone = path.join(work, 'clone');
    const f = await git(['-c', `http.proxy=${proxyUrl}`, 'fetch', 'origin'], { cwd: clone, env: gitEnv });
    assert.equal(f.code, 0, f.out);
    writeFileSync(path.join(clone, 'NEW'), 'change\n');
    await git(['-c', 'user.name=T', '-c', 'user.email=t@example.invalid', 'commit', '-q', '-am', 'x'], { cwd: clone });
    await git(['add', 'NEW'], { cwd: clone });
    await git(['-c', 'user.name=T', '-c', 'user.email=t@example.invalid', 'commit', '-q', '-m', 'change'], { cwd: clone });
    const before = srv.requests.length;
    const p = await git(['-c', `http.proxy=${proxyUrl}`, 'push', 'origin', 'HEAD:refs/heads/main'], { cwd: clone, env: gitEnv });
    assert.notEqual(p.code, 0, p.out);
    assert.match(p.out, /403/);
    assert.equal(srv.requests.length, before, 'no request of the push reached the server');
    const rec = await waitForAudit(t, (x) => x.outcome === 'denied' && String(x.path ?? '').endsWith('/info/refs?service='));
    assert.ok(rec, 'the refused push discovery is audited (query values are stripped)');
    assert.match(String(rec.reason), /git push discovery/);
    assert.equal(rec.code, 'policy_denied');
    const log = execFileSync('git', ['-C', path.join(work, 'repo.git'), 'log', '--oneline', 'main']).toString();
    assert.equal(log.trim().split('\n').length, 1, 'the server repository is unchanged');
  });

  it('a direct push (no proxy) works, so the refusal above is turret’s', async () => {
    const clone = path.join(work, 'clone');
    const r = await git(['push', '-q', path.join(work, 'repo.git'), 'HEAD:refs/heads/direct'], { cwd: clone });
    assert.equal(r.code, 0, r.out);
  });
});
