/**
 * `action: ask` through the real proxy: a request waits for an operator, who allows it once,
 * denies it with a message, lets it time out, or allows the agent and host for a while (a rule
 * entry with until: that survives a restart and then expires); a client that gives up cancels
 * its entry. Decisions come from `turret approvals` (the CLI) over the admin listener. Also the
 * console's access control: no page without a session, no API without the token, no form
 * without its token or from another origin, hostile values shown as text.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { curl, type CurlResult } from '../helpers/curl.js';
import { adminPort, httpGet } from '../helpers/ops.js';
import { agentToken, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { postForm } from '../helpers/console.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const ADMIN_TOKEN = `adm_${randomBytes(16).toString('hex')}`;

function rules(): RuleFile {
  return {
    agents: ['bot'],
    rules: [
      { name: 'reads', methods: ['read'], hosts: ['read.turret.test:*'], unsafe_addresses: LOOPBACK },
      { name: 'ask-writes', action: 'ask', methods: ['POST'], hosts: ['ask.turret.test:*'], schemes: ['http', 'https'], ask_timeout: '60s', unsafe_addresses: LOOPBACK },
      { name: 'ask-later', action: 'ask', methods: ['POST'], hosts: ['later.turret.test:*'], unsafe_addresses: LOOPBACK },
      { name: 'ask-quick', action: 'ask', methods: ['POST'], hosts: ['quick.turret.test:*'], ask_timeout: '1s', unsafe_addresses: LOOPBACK },
    ],
    local: ['ask.turret.test', 'quick.turret.test', 'later.turret.test', 'read.turret.test'],
  };
}

interface Pending {
  id: string;
  state: string;
  agent: string;
  path: string;
}

describe('action: ask and the approvals API', () => {
  let t: TurretProc;
  let up: Upstream;
  let token: string;
  let admin: number;
  const outputs: string[] = [];

  before(async () => {
    up = await startUpstream();
    t = await startTurret({ rules: { 'rules.yaml': rules() }, env: { TURRET_ADMIN_TOKEN: ADMIN_TOKEN } });
    token = await agentToken(t, 'bot');
    admin = adminPort(t);
  });
  after(async () => {
    await t?.stop();
    await up?.close();
    const all = [outputs.join('\n'), t.stderr(), t.stdout(), t.auditText()].join('\n');
    assert.ok(!all.includes(ADMIN_TOKEN), 'the admin token appears in no output');
  });

  const proxied = (p: TurretProc, tok: string, args: string[]): Promise<CurlResult> =>
    // A request may wait for an operator: a longer --max-time than the helper's (the last one wins).
    curl(['-x', `http://127.0.0.1:${p.port}`, '--proxy-user', `bot:${tok}`, '--cacert', path.join(p.caDir, 'ca.crt'), '--max-time', '120', ...args]).then((r) => {
      outputs.push(r.raw);
      return r;
    });
  const approvals = (p: TurretProc, args: string[]) => p.cli(['approvals', ...args, '--admin', `127.0.0.1:${adminPort(p)}`], { TURRET_ADMIN_TOKEN: ADMIN_TOKEN });
  /** Bounded wait until the approvals list shows a pending entry for this path. */
  async function pendingFor(p: TurretProc, urlPath: string): Promise<Pending> {
    for (let i = 0; i < 200; i++) {
      const r = await httpGet(adminPort(p), '/api/approvals', { authorization: `Bearer ${ADMIN_TOKEN}` });
      const hit = (JSON.parse(r.body) as { approvals: Pending[] }).approvals.find((a) => a.state === 'pending' && a.path === urlPath);
      if (hit) return hit;
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error(`no pending approval for ${urlPath}`);
  }

  it('a pending request is allowed once by the CLI and completes; the record says who decided', async () => {
    const req = proxied(t, token, ['--data-binary', 'x', `https://ask.turret.test:${up.port}/once`]);
    const a = await pendingFor(t, '/once');
    const list = await approvals(t, ['list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`${a.id}\\tpending\\tbot\\tPOST https://ask.turret.test:${up.port}/once`));
    const r = await approvals(t, ['allow', a.id, '--as', 'alice']);
    assert.equal(r.code, 0, r.stderr);
    const res = await req;
    assert.equal(res.status, 200, res.raw);
    assert.equal(up.received.at(-1)?.url, '/once');
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/once');
    const note = rec?.approval as Record<string, string>;
    assert.equal(note.decision, 'allowed_once');
    assert.match(String(note.by), /^cli:alice@127\.0\.0\.1$/);
    assert.equal(rec?.outcome, 'completed');
    const again = await approvals(t, ['deny', a.id]);
    assert.equal(again.code, 2, 'a decided request cannot be decided again');
    assert.match(again.stderr, /already allowed once/);
  });

  it('a denied request gets 403 approval_denied with the operator’s message, and nothing reaches the upstream', async () => {
    const n = up.received.length;
    const req = proxied(t, token, ['--data-binary', 'x', `https://ask.turret.test:${up.port}/deny`]);
    const a = await pendingFor(t, '/deny');
    assert.equal((await approvals(t, ['deny', a.id, '--message', 'not during the freeze'])).code, 0);
    const res = await req;
    assert.equal(res.status, 403);
    assert.equal(res.headers['x-turret-error'], 'approval_denied');
    assert.match(res.body, /not during the freeze/);
    assert.equal(up.received.length, n);
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/deny');
    assert.equal((rec?.approval as Record<string, string>).decision, 'denied');
  });

  it('no answer within ask_timeout: 403 approval_timeout', async () => {
    const res = await proxied(t, token, ['--data-binary', 'x', `https://quick.turret.test:${up.port}/timeout`]);
    assert.equal(res.status, 403, res.raw);
    assert.equal(res.headers['x-turret-error'], 'approval_timeout');
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/timeout');
    assert.equal((rec?.approval as Record<string, string>).decision, 'timed_out');
  });

  it('a client that gives up cancels its pending entry (one record, approval_cancelled)', async () => {
    const s = net.connect(t.port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    const auth = Buffer.from(`bot:${token}`).toString('base64');
    s.write(`POST http://ask.turret.test:${up.port}/gone HTTP/1.1\r\nHost: ask.turret.test:${up.port}\r\nProxy-Authorization: Basic ${auth}\r\nContent-Length: 1\r\n\r\nx`);
    const a = await pendingFor(t, '/gone');
    s.destroy();
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/gone');
    assert.equal(rec?.code, 'approval_cancelled');
    assert.equal((rec?.approval as Record<string, string>).decision, 'cancelled');
    const list = JSON.parse((await httpGet(admin, '/api/approvals', { authorization: `Bearer ${ADMIN_TOKEN}` })).body) as { approvals: Pending[] };
    assert.equal(list.approvals.find((x) => x.id === a.id)?.state, 'cancelled');
    assert.equal(t.audit().filter((x) => x.event === 'request' && x.path === '/gone').length, 1);
  });

  it('"allow for" adds a rule entry that survives a restart and shows in explain', async () => {
    const req = proxied(t, token, ['--data-binary', 'x', `https://ask.turret.test:${up.port}/for`]);
    const a = await pendingFor(t, '/for');
    assert.equal((await approvals(t, ['allow', a.id, '--for', '1h'])).code, 0);
    assert.equal((await req).status, 200);
    const file = readFileSync(path.join(t.rulesDir, 'approvals.yaml'), 'utf8');
    assert.match(file, new RegExp(`name: approval-${a.id}`));
    // The next request passes without asking (the entry is in force once the reload ran).
    let next: CurlResult | null = null;
    for (let i = 0; i < 100 && next?.status !== 200; i++) next = await proxied(t, token, ['--max-time', '2', '--data-binary', 'y', `https://ask.turret.test:${up.port}/for-next`]);
    assert.equal(next?.status, 200, 'allowed without asking');
    // A new process with the same rule files keeps it.
    const t2 = await startTurret({ rules: { 'rules.yaml': rules(), 'approvals.yaml': file }, env: { TURRET_ADMIN_TOKEN: ADMIN_TOKEN } });
    try {
      const ex = await t2.cli(['rules', 'explain', '--agent', 'bot', 'POST', `https://ask.turret.test:${up.port}/x`]);
      assert.match(ex.stdout, new RegExp(`decision: allow[\\s\\S]*approval-${a.id}`), ex.stdout + ex.stderr);
      const tok2 = await agentToken(t2, 'bot');
      assert.equal((await proxied(t2, tok2, ['--data-binary', 'z', `https://ask.turret.test:${up.port}/after-restart`])).status, 200, 'allowed after the restart');
    } finally {
      await t2.stop();
    }
  });

  it('an "allow for" entry expires: the host is asked about again', async () => {
    const req = proxied(t, token, ['--data-binary', 'x', `https://later.turret.test:${up.port}/short`]);
    const a = await pendingFor(t, '/short');
    assert.equal((await approvals(t, ['allow', a.id, '--for', '2s'])).code, 0);
    assert.equal((await req).status, 200);
    // Bounded polling of explain (it sends nothing) until the entry's until: has passed.
    const ask = (): Promise<string> => t.cli(['rules', 'explain', '--agent', 'bot', 'POST', `https://later.turret.test:${up.port}/x`]).then((r) => r.stdout);
    let out = await ask();
    for (let i = 0; i < 300 && !/decision: ask/.test(out); i++) out = await ask();
    assert.match(out, /decision: ask an operator[\s\S]*expired at/);
  });

  it('the console and the API refuse without a session, the token, the form token, or from another origin', async () => {
    assert.equal((await httpGet(admin, '/console/')).status, 303, 'no session → the login page');
    assert.equal((await httpGet(admin, '/api/approvals')).status, 401);
    assert.equal((await httpGet(admin, '/api/approvals', { authorization: 'Bearer wrong' })).status, 401);
    const bad = await postForm(admin, '/console/login', { token: 'wrong' });
    assert.equal(bad.status, 401);
    const login = await postForm(admin, '/console/login', { token: ADMIN_TOKEN });
    assert.equal(login.status, 303);
    const cookie = String(login.headers['set-cookie']).split(';')[0] ?? '';
    assert.match(String(login.headers['set-cookie']), /HttpOnly; SameSite=Strict/);
    const page = await httpGet(admin, '/console/', { cookie });
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
    assert.doesNotMatch(page.body, /<script>(?!<\/script>)/, 'no inline script');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
    assert.ok(csrf);
    assert.equal((await postForm(admin, '/console/agents/revoke', { agent: 'bot' }, { cookie })).status, 403, 'no form token');
    assert.equal((await postForm(admin, '/console/agents/revoke', { agent: 'bot', _csrf: 'x'.repeat(32) }, { cookie })).status, 403, 'wrong form token');
    assert.equal((await postForm(admin, '/console/agents/revoke', { agent: 'bot', _csrf: csrf }, { cookie, origin: 'http://evil.example' })).status, 403, 'another origin');
    assert.equal((await postForm(admin, '/console/agents/revoke', { agent: 'bot', _csrf: csrf }, { cookie, 'sec-fetch-site': 'cross-site' })).status, 403, 'cross-site');
  });

  it('a hostile path is shown as text, never as markup', async () => {
    const evil = '/<script>alert(1)</script><img/src=x/onerror=alert(2)>';
    const s = net.connect(t.port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.write(
      `GET http://read.turret.test:${up.port}${evil} HTTP/1.1\r\nHost: read.turret.test:${up.port}\r\nProxy-Authorization: Basic ${Buffer.from(`bot:${token}`).toString('base64')}\r\nConnection: close\r\n\r\n`,
    );
    await new Promise((r) => s.on('close', r).resume());
    const rec = await waitForAudit(t, (x) => x.event === 'request' && String(x.path).includes('alert(1)'));
    assert.ok(rec, 'the request has a record');
    const login = await postForm(admin, '/console/login', { token: ADMIN_TOKEN });
    const cookie = String(login.headers['set-cookie']).split(';')[0] ?? '';
    for (const p of ['/console/', `/console/record/${String(rec.request_id)}`, '/console/agents']) {
      const page = await httpGet(admin, p, { cookie });
      assert.equal(page.status, 200, p);
      assert.ok(!page.body.includes('<script>alert') && !page.body.includes('<img/src'), `${p} shows the path as text`);
      assert.ok(page.body.includes('&#60;script&#62;alert(1)') || p === '/console/agents', `${p} shows the escaped path`);
    }
  });
});
