/**
 * Misuse through a real turret and real curl: every way a handle can be used where it must not
 * go gets a 403 with its own code and an audit record naming the secret, never the value;
 * `on_misuse: revoke` kills the handle at once; a revocation survives a restart (and is seen by
 * another replica sharing the key directory). Also: scope, query and body opt-in injection,
 * compressed bodies, and the encrypted store as a source.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import { curl, type CurlResult } from '../helpers/curl.js';
import { agentToken, cleanEnv, MAIN, runCli, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const API = `fake_api_${randomBytes(18).toString('hex')}`;
const BURN = `fake_burn_${randomBytes(18).toString('hex')}`;
const FORM = `fake form&=${randomBytes(18).toString('hex')}`;
const ENV = { T_API: API, T_BURN: BURN, TURRET_ADMIN: 'off' };

const rules = (): RuleFile => ({
  agents: ['a', 'b'],
  secrets: [
    { name: 'api', from: { env: 'T_API' }, hosts: ['echo.turret.test:*'], methods: ['read', 'POST'], paths: ['/ok/**'] },
    { name: 'burn', from: { env: 'T_BURN' }, hosts: ['echo.turret.test:*'], on_misuse: 'revoke' },
    { name: 'form', from: { store: 'form-token' }, hosts: ['form.turret.test:*'], body: true, query: true },
  ],
  rules: [{ name: 'all', methods: ['read', 'write'], hosts: ['echo.turret.test:*', 'other.turret.test:*', 'form.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['echo.turret.test', 'other.turret.test', 'form.turret.test'],
});

/** A second turret process on the same rules and key directory (a restart, or another replica). */
function startReplica(t: TurretProc): Promise<{ port: number; stop: () => void; output: () => string }> {
  const p = spawn(process.execPath, [MAIN, 'start', '--rules', t.rulesDir, '--ca', t.caDir, '--listen', '127.0.0.1:0', '--audit', path.join(t.dir, 'audit2.jsonl')], {
    env: cleanEnv(ENV),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  p.stdout.on('data', (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => {
    p.stderr.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /"msg":"turret started".*?"listen":"[^"]*:(\d+)"/.exec(out);
      if (m) resolve({ port: Number(m[1]), stop: () => p.kill('SIGTERM'), output: () => out });
    });
    p.on('exit', (c) => reject(new Error(`replica exited ${c}: ${out}`)));
  });
}

describe('handle misuse and opt-in injection', () => {
  let t: TurretProc;
  let up: Upstream;
  const tokens: Record<string, string> = {};
  const seen: string[] = [];

  const issue = async (agent: string, secret: string, ttl = '1h'): Promise<string> => {
    const r = await t.cli(['handle', 'issue', '--agent', agent, '--secret', secret, '--ttl', ttl]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const req = async (args: string[], o: { agent?: string; port?: number } = {}): Promise<CurlResult> => {
    const agent = o.agent ?? 'a';
    const r = await curl(['-x', `http://127.0.0.1:${o.port ?? t.port}`, '--proxy-user', `${agent}:${tokens[agent]}`, '--cacert', path.join(t.caDir, 'ca.crt'), ...args]);
    seen.push(r.raw, r.stderr);
    return r;
  };
  const url = (host: string, p: string): string => `https://${host}.turret.test:${up.port}${p}`;
  const denied = async (r: CurlResult, code: string, secret: string): Promise<void> => {
    assert.equal(r.status, 403, r.raw);
    assert.equal(r.headers['x-turret-error'], code);
    const rec = await waitForAudit(t, (x) => x.code === code && String(x.reason).includes(secret));
    assert.ok(rec, `an audit record for ${code} naming ${secret}`);
    assert.equal(rec.outcome, 'denied');
  };

  before(async () => {
    up = await startUpstream();
    t = await startTurret({ rules: { 'r.yaml': rules() }, env: ENV });
    for (const agent of ['a', 'b']) tokens[agent] = await agentToken(t, agent);
    const set = await runCli(['secret', 'set', 'form-token', '--ca', t.caDir], { input: `${FORM}\n` });
    assert.equal(set.code, 0, set.stderr);
    seen.push(set.stdout, set.stderr);
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    for (const [name, text] of [
      ['client output', seen.join('\n')],
      ['turret output', t.stdout() + t.stderr()],
      ['audit', t.auditText()],
    ] as const) {
      for (const s of [API, BURN, FORM]) assert.ok(!text.includes(s), `${name} must never contain a secret`);
    }
  });

  it('host not bound, other agent, expired: 403 with codes and audit records', async () => {
    const h = await issue('a', 'api');
    await denied(await req(['-H', `Authorization: Bearer ${h}`, url('other', '/ok/x')]), 'handle_host_not_bound', 'api');
    await denied(await req(['-H', `Authorization: Bearer ${h}`, url('echo', '/ok/x')], { agent: 'b' }), 'handle_wrong_agent', 'api');
    const short = await issue('a', 'api', '1s');
    // Until the 1 s lifetime has passed (bounded; each try is a real request).
    let r = await req(['-H', `Authorization: Bearer ${short}`, url('echo', '/ok/x')]);
    for (let i = 0; i < 100 && r.headers['x-turret-error'] !== 'handle_expired'; i++) {
      await new Promise((res) => setTimeout(res, 50));
      r = await req(['-H', `Authorization: Bearer ${short}`, url('echo', '/ok/x')]);
    }
    await denied(r, 'handle_expired', 'api');
    assert.ok(!up.received.some((x) => JSON.stringify(x).includes('trt_')), 'no handle reached any upstream');
  });

  it('percent- and base64-encoded handles toward an unbound host are refused', async () => {
    const h = await issue('a', 'api');
    const pct = [...h].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('');
    await denied(await req([url('other', `/ok/?q=${pct}`)]), 'handle_host_not_bound', 'api');
    await denied(await req(['-H', `X-Data: ${Buffer.from(`{"k":"${h}"}`).toString('base64')}`, url('other', '/ok/b64')]), 'handle_host_not_bound', 'api');
    await denied(await req(['--data-binary', `payload=${Buffer.from(h).toString('base64')}`, url('other', '/ok/body')]), 'handle_host_not_bound', 'api');
  });

  it('scope by method and path', async () => {
    const h = await issue('a', 'api');
    assert.equal((await req(['-H', `Authorization: Bearer ${h}`, url('echo', '/ok/repo')])).status, 200);
    assert.equal(up.received.at(-1)?.headers.authorization, `Bearer ${API}`);
    await denied(await req(['-X', 'DELETE', '-H', `Authorization: Bearer ${h}`, url('echo', '/ok/repo')]), 'handle_scope_denied', 'api');
    await denied(await req(['-H', `Authorization: Bearer ${h}`, url('echo', '/ok/../admin')]), 'handle_scope_denied', 'api');
  });

  it('on_misuse: revoke kills the handle on its first misuse', async () => {
    const h = await issue('a', 'burn');
    await denied(await req(['-H', `Authorization: Bearer ${h}`, url('other', '/x')]), 'handle_host_not_bound', 'burn');
    // The revocation is written asynchronously: wait for the event (the misuse's record says so).
    await waitForAudit(t, (x) => x.code === 'handle_host_not_bound' && String(x.path) === '/x', 20_000);
    let r = await req(['-H', `Authorization: Bearer ${h}`, url('echo', '/x')]);
    for (let i = 0; i < 100 && r.headers['x-turret-error'] !== 'handle_revoked'; i++) r = await req(['-H', `Authorization: Bearer ${h}`, url('echo', '/x')]);
    await denied(r, 'handle_revoked', 'burn');
  });

  it('a revocation survives a restart and reaches a replica sharing the key directory', async () => {
    const h = await issue('a', 'burn');
    const id =
      (await t.cli(['handle', 'list', '--secret', 'burn'])).stdout
        .split('\n')
        .find((l) => l.includes('\tactive\t'))
        ?.split('\t')[0] ?? '';
    const replica = await startReplica(t);
    try {
      assert.equal((await req(['-H', `Authorization: Bearer ${h}`, url('echo', '/x')], { port: replica.port })).status, 200, 'the replica opens a handle it never saw issued');
      assert.equal((await t.cli(['handle', 'revoke', id])).code, 0);
      // The replica re-reads the shared revocation list: bounded tries until it refuses.
      let r = await req(['-H', `Authorization: Bearer ${h}`, url('echo', '/x')], { port: replica.port });
      for (let i = 0; i < 100 && r.headers['x-turret-error'] !== 'handle_revoked'; i++) {
        await new Promise((res) => setTimeout(res, 50));
        r = await req(['-H', `Authorization: Bearer ${h}`, url('echo', '/x')], { port: replica.port });
      }
      assert.equal(r.headers['x-turret-error'], 'handle_revoked');
    } finally {
      replica.stop();
    }
    const restarted = await startReplica(t);
    try {
      const r = await req(['-H', `Authorization: Bearer ${h}`, url('echo', '/x')], { port: restarted.port });
      assert.equal(r.headers['x-turret-error'], 'handle_revoked', 'a fresh process still refuses it');
      seen.push(restarted.output());
    } finally {
      restarted.stop();
    }
  });

  it('store-backed secret: body substitution with a corrected Content-Length, query opt-in', async () => {
    const h = await issue('a', 'form');
    const body = `user=me&token=${h}&x=${'y'.repeat(5000)}`;
    const r = await req(['--data-binary', body, url('form', '/submit')]);
    assert.equal(r.status, 200, r.raw);
    const got = up.received.at(-1);
    assert.equal(got?.body, body.replace(h, FORM));
    assert.equal(got?.headers['content-length'], String(Buffer.byteLength(body.replace(h, FORM))));
    assert.equal((await req([url('form', `/search?key=${h}&z=1`)])).status, 200);
    assert.equal(new URL(up.received.at(-1)?.url ?? '', 'https://x').searchParams.get('key'), FORM);
    const rec = await waitForAudit(t, (x) => x.path === '/search?key=&z=' && x.outcome === 'completed');
    assert.deepEqual(rec?.secrets, ['form']);
    assert.match(String((rec?.fingerprints as Record<string, string>)?.form), /^[0-9a-f]{16}$/);
  });

  it('refuses a compressed body toward a body-injecting host, and a handle in a body elsewhere', async () => {
    const h = await issue('a', 'form');
    const gz = path.join(t.dir, 'body.gz');
    writeFileSync(gz, zlib.gzipSync(Buffer.from(`token=${h}`)));
    const r = await req(['-H', 'Content-Encoding: gzip', '--data-binary', `@${gz}`, url('form', '/gz')]);
    assert.equal(r.headers['x-turret-error'], 'body_encoding_unsupported');
    assert.equal(r.status, 415);
    const api = await issue('a', 'api');
    await denied(await req(['--data-binary', `{"t":"${api}"}`, url('echo', '/ok/post')]), 'handle_location_unsupported', 'api');
    assert.ok(!up.received.some((x) => x.body.includes('trt_')), 'no body with a handle reached the upstream');
  });

  it('turret secret list shows names, sources and ages, never values', async () => {
    const r = await t.cli(['secret', 'list'], ENV);
    seen.push(r.stdout, r.stderr);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^form\tstore form-token\tloaded\t\d+[smhd]\t[0-9a-f]{16}\tform\.turret\.test:\*$/m);
    assert.match(r.stdout, /^api\tenv T_API\tloaded\t-\t[0-9a-f]{16}\t/m);
  });
});
