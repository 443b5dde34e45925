/**
 * The console in a real browser: Debian's Chromium driven by playwright-core (executablePath,
 * never a downloaded browser). Log in, watch a request appear live, approve a pending request
 * and see the client's request complete, revoke a handle and see the next request refused.
 * Screenshots of each page are taken (into docs/console/ with UPDATE_SCREENSHOTS=1, else a
 * temp dir) so the docs show what the test saw.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { curl, type CurlResult } from '../helpers/curl.js';
import { adminPort } from '../helpers/ops.js';
import { agentToken, ROOT, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ADMIN_TOKEN = `adm_${randomBytes(16).toString('hex')}`;
const SECRET = `fake_console_${randomBytes(16).toString('hex')}`;
const SHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? path.join(ROOT, 'docs/console') : mkdtempSync(path.join(tmpdir(), 'turret-shots-'));

function rules(): RuleFile {
  return {
    agents: ['bot'],
    secrets: [{ name: 'api-token', from: { env: 'TEST_CONSOLE_TOKEN' }, hosts: ['api.turret.test:*'], max_age: '90d' }],
    rules: [
      { name: 'reads', methods: ['read'], hosts: ['api.turret.test:*'], unsafe_addresses: LOOPBACK },
      { name: 'ask-writes', action: 'ask', methods: ['write'], hosts: ['api.turret.test:*'], unsafe_addresses: LOOPBACK },
    ],
    local: ['api.turret.test'],
  };
}

describe('the console in Chromium', () => {
  let t: TurretProc;
  let up: Upstream;
  let browser: Browser;
  let page: Page;
  let token: string;
  let base: string;
  const seen: string[] = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium is needed at ${CHROMIUM} (Debian package chromium; .ci/run installs it)`);
    mkdirSync(SHOTS, { recursive: true });
    up = await startUpstream();
    t = await startTurret({ rules: { 'rules.yaml': rules() }, env: { TURRET_ADMIN_TOKEN: ADMIN_TOKEN, TEST_CONSOLE_TOKEN: SECRET } });
    token = await agentToken(t, 'bot');
    base = `http://127.0.0.1:${adminPort(t)}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-proxy-server',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  });

  after(async () => {
    await browser?.close();
    await t?.stop();
    await up?.close();
    const all = [seen.join('\n'), t.stderr(), t.stdout(), t.auditText()].join('\n');
    assert.ok(!all.includes(SECRET), 'the secret appears in no page, response, log or record');
    assert.ok(!all.includes(ADMIN_TOKEN), 'nor the admin token');
  });

  const request = (args: string[]): Promise<CurlResult> =>
    curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `bot:${token}`, '--cacert', path.join(t.caDir, 'ca.crt'), '--max-time', '120', ...args]).then((r) => {
      seen.push(r.raw);
      return r;
    });
  const shot = async (name: string): Promise<void> => {
    seen.push(await page.content());
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  };

  it('logs in with the admin token and sees a request appear live', async () => {
    await page.goto(`${base}/console/`);
    assert.match(page.url(), /\/console\/login$/, 'no session → the login page');
    await page.fill('input[name=token]', ADMIN_TOKEN);
    await page.click('button:has-text("Log in")');
    await page.waitForURL(`${base}/console/`);
    await page.waitForSelector('#live-status:has-text("Live")');
    const r = await request([`https://api.turret.test:${up.port}/live-check?q=1`]);
    assert.equal(r.status, 200);
    const row = page.locator('#records tbody tr', { hasText: '/live-check?q=' });
    await row.first().waitFor();
    assert.equal(await row.first().getAttribute('data-outcome'), 'completed');
    await page.fill('[data-filter=outcome]', 'denied');
    assert.equal(await row.first().isHidden(), true, 'filters hide what does not match');
    await page.fill('[data-filter=outcome]', '');
    await shot('decisions');
    await row.first().locator('a').click();
    await page.waitForSelector('table.detail');
    assert.match((await page.textContent('table.detail')) ?? '', /request_id/);
    await shot('record');
  });

  it('approves a pending request and the client’s request completes', async () => {
    await page.goto(`${base}/console/approvals`);
    await page.waitForSelector('#approvals');
    const pending = request(['--data-binary', '{"refund": 12}', `https://api.turret.test:${up.port}/refunds`]);
    const item = page.locator('li.pending', { hasText: '/refunds' });
    await item.waitFor(); // appears live (server-sent event → list refresh)
    await shot('approvals');
    await item.locator('button.allow-once').click();
    const r = await pending;
    assert.equal(r.status, 200, r.raw);
    assert.equal(up.received.at(-1)?.url, '/refunds');
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/refunds');
    assert.equal((rec?.approval as Record<string, string>).decision, 'allowed_once');
    assert.match(String((rec?.approval as Record<string, string>).by), /^console@/);
  });

  it('revokes a handle and the next request with it is refused', async () => {
    const issued = await t.cli(['handle', 'issue', '--agent', 'bot', '--secret', 'api-token', '--ttl', '1h']);
    const handle = issued.stdout.trim();
    let r = await request(['-H', `Authorization: Bearer ${handle}`, `https://api.turret.test:${up.port}/with-handle`]);
    assert.equal(r.status, 200);
    assert.equal(up.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`);
    await page.goto(`${base}/console/agents`);
    const row = page.locator('tr[data-handle]', { hasText: 'active' });
    await row.first().waitFor();
    await shot('agents');
    await row.first().locator('button.revoke').click();
    await page.waitForURL(`${base}/console/agents`);
    assert.equal(await page.locator('tr[data-handle]', { hasText: 'revoked' }).count(), 1);
    r = await request(['-H', `Authorization: Bearer ${handle}`, `https://api.turret.test:${up.port}/with-handle`]);
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-turret-error'], 'handle_revoked');
  });

  it('shows secrets (never values) and explains a request', async () => {
    await page.goto(`${base}/console/secrets`);
    const text = (await page.textContent('main')) ?? '';
    assert.match(text, /api-token/);
    assert.match(text, /loaded/);
    await shot('secrets');
    await page.goto(`${base}/console/rules`);
    await page.fill('input[name=method]', 'DELETE');
    await page.fill('input[name=url]', `https://api.turret.test:${up.port}/x`);
    await page.click('button:has-text("Explain")');
    await page.waitForSelector('.explain');
    assert.match((await page.textContent('.explain')) ?? '', /ask an operator/);
    await shot('rules');
  });
});
