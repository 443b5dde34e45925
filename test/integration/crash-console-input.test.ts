/**
 * The console and the approvals API given malformed input (attack review, crashrev2). Probed:
 * bad %-escapes, 7 KB paths, bodies over the limit, cut bodies, bad chunking, forms without their
 * token or type, junk cookies, live feeds cut at once: the process lived through all of them.
 * Two answered 500 and logged "admin request failed" for the client's own mistake: a record id
 * with a malformed %-escape (decodeURIComponent threw) and an API body of JSON `null` (reading a
 * field of it threw). Both are now 400.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startTurret, type TurretProc } from '../helpers/turret.js';
import { plainWsRules } from '../helpers/rules.js';
import { adminPort, httpGet } from '../helpers/ops.js';

const TOKEN = `fake_${randomBytes(16).toString('hex')}`;
let t: TurretProc;

before(async () => {
  t = await startTurret({ rules: { 'r.yaml': plainWsRules() }, env: { TURRET_ADMIN_TOKEN: TOKEN } });
});
after(async () => {
  await t?.stop();
});

async function post(path: string, body: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${adminPort(t)}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body });
  return { status: r.status, body: await r.text() };
}

it('an approvals API body that is JSON but not an object is 400, not 500', async () => {
  for (const body of ['null', '[]', '7', '"x"']) {
    const r = await post('/api/approvals/abc/allow', body);
    assert.equal(r.status, 400, `${body}: ${r.body}`);
    assert.match(r.body, /JSON object/);
  }
  assert.doesNotMatch(t.stderr(), /admin request failed/);
});

it('a console record id with a malformed %-escape is 400, not 500', async () => {
  const login = await fetch(`http://127.0.0.1:${adminPort(t)}/console/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=${TOKEN}`,
    redirect: 'manual',
  });
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  assert.ok(cookie, 'a session');
  const r = await httpGet(adminPort(t), '/console/record/%E0%A4%A', { cookie });
  assert.equal(r.status, 400);
  assert.doesNotMatch(t.stderr(), /admin request failed/);
  assert.equal(t.proc.exitCode, null);
  assert.ok(!t.stderr().includes(TOKEN) && !t.auditText().includes(TOKEN), 'the admin token is in no output');
});
