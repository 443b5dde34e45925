/**
 * The admin listener of a real turret process: token handling, /healthz, /readyz (including a
 * refused reload and a missing secret), and a /metrics scrape parsed strictly as Prometheus text
 * after real traffic, proving every metric the operations issue names is actually incremented.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parsePrometheusText, type ParsedExposition } from '../helpers/prometheus.js';
import { curl } from '../helpers/curl.js';
import { adminPort, agentToken, basic, httpGet, rawConnect } from '../helpers/ops.js';
import { startTurret, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { ruleFile, writeRules, type RuleFile, type Secret } from '../helpers/rules.js';

const SECRET = `fake_ops_${randomBytes(18).toString('hex')}`;
const ADMIN_TOKEN = randomBytes(24).toString('hex');

function rules(extraSecrets: Secret[] = []): RuleFile {
  return {
    agents: ['agent-a'],
    secrets: [{ name: 'echo-token', from: { env: 'TEST_OPS_TOKEN' }, hosts: ['echo.turret.test:*'] }, ...extraSecrets],
    rules: [
      { name: 'echo', methods: ['read', 'POST'], hosts: ['echo.turret.test:*'], unsafe_addresses: ['127.0.0.1/32'] },
      { name: 'loop', methods: ['read'], hosts: ['loop.turret.test:*'] },
    ],
    local: ['echo.turret.test', 'loop.turret.test'],
  };
}

function value(p: ParsedExposition, name: string, labels: Record<string, string> = {}): number {
  const hits = p.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hits.reduce((a, s) => a + s.value, 0);
}

describe('admin listener', () => {
  let t: TurretProc;
  let up: Upstream;
  let admin: number;
  let caFile: string;
  let token: string;
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

  const sighupAndWait = async (needle: string, count: number): Promise<void> => {
    t.proc.kill('SIGHUP');
    const end = Date.now() + 10_000;
    while (t.stderr().split(needle).length - 1 < count) {
      if (Date.now() > end) throw new Error(`no "${needle}" after SIGHUP:\n${t.stderr()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  before(async () => {
    up = await startUpstream();
    t = await startTurret({ rules: { 'ops.yaml': rules() }, env: { TEST_OPS_TOKEN: SECRET, TURRET_ADMIN_TOKEN: ADMIN_TOKEN }, args: ['--admin', '127.0.0.1:0', '--no-watch'] });
    admin = adminPort(t);
    caFile = path.join(t.caDir, 'ca.crt');
    token = await agentToken(t, 'agent-a');
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  it('listens on its own loopback port, separate from the proxy', () => {
    assert.notEqual(admin, t.port);
    assert.match(t.stderr(), /"admin":"127\.0\.0\.1:\d+","admin_auth":"bearer","mode":"development"/);
  });

  it('/healthz answers without the token; /metrics and /readyz refuse a missing or wrong token', async () => {
    const h = await httpGet(admin, '/healthz');
    assert.equal(h.status, 200);
    assert.equal(JSON.parse(h.body).status, 'ok');
    for (const p of ['/metrics', '/readyz']) {
      assert.equal((await httpGet(admin, p)).status, 401, `${p} without a token`);
      assert.equal((await httpGet(admin, p, { authorization: `Bearer ${ADMIN_TOKEN}x` })).status, 401, `${p} with a longer token`);
      assert.equal((await httpGet(admin, p, { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` })).status, 401, `${p} with a prefix`);
      assert.equal((await httpGet(admin, p, { authorization: `Basic ${Buffer.from(`x:${ADMIN_TOKEN}`).toString('base64')}` })).status, 401, `${p} with Basic`);
    }
    assert.equal((await httpGet(admin, '/metrics', auth, 'POST')).status, 405);
    assert.equal((await httpGet(admin, '/nope', auth)).status, 404);
  });

  it('/readyz is ready with every check true', async () => {
    const r = await httpGet(admin, '/readyz', auth);
    assert.equal(r.status, 200, r.body);
    const j = JSON.parse(r.body);
    assert.deepEqual(j.checks, { ca: true, rules: true, secrets: true, audit: true, shared_state: true, draining: false });
    assert.equal(j.last_reload_error, null);
  });

  it('the proxy port does not serve the admin endpoints', async () => {
    const r = await httpGet(t.port, '/metrics');
    assert.notEqual(r.status, 200);
    assert.ok(!r.body.includes('turret_requests_total'));
  });

  it('counts real traffic; the scrape parses strictly as Prometheus text', async () => {
    const px = ['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `agent-a:${token}`, '--cacert', caFile];
    const handle = (await t.cli(['handle', 'issue', '--agent', 'agent-a', '--secret', 'echo-token'])).stdout.trim();
    // Allowed twice (second is a leaf-cache hit), with an injection whose echo is redacted.
    for (let i = 0; i < 2; i++) {
      const r = await curl([...px, '-H', `Authorization: Bearer ${handle}`, `https://echo.turret.test:${up.port}/m${i}`]);
      assert.equal(r.status, 200, r.raw + r.stderr);
      assert.ok(!r.raw.includes(SECRET));
    }
    const denied = await curl([...px, '-X', 'DELETE', `https://echo.turret.test:${up.port}/x`]);
    assert.equal(denied.status, 403);
    const refused = await curl([...px, `http://loop.turret.test:${up.port}/`]);
    assert.equal(refused.headers['x-turret-error'], 'dest_address_forbidden');
    // One tunnel held open while scraping.
    const held = await rawConnect(t.port, `echo.turret.test:${up.port}`, basic('agent-a', token));
    assert.equal(held.status, 200);

    const m = await httpGet(admin, '/metrics', auth);
    assert.equal(m.status, 200);
    assert.match(String(m.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const p = parsePrometheusText(m.body);
    assert.ok(!m.body.includes(SECRET) && !m.body.includes(handle) && !m.body.includes(token));
    assert.ok(value(p, 'turret_requests_total', { agent: 'agent-a', decision: 'allowed', code: 'none' }) >= 2);
    assert.ok(value(p, 'turret_requests_total', { agent: 'agent-a', decision: 'denied' }) >= 2, 'policy denial and refused address');
    assert.ok(value(p, 'turret_upstream_latency_seconds_count', { scheme: 'https' }) >= 2);
    assert.equal(p.types.get('turret_upstream_latency_seconds'), 'histogram');
    assert.ok(value(p, 'turret_open_tunnels') >= 1, 'the held tunnel is counted');
    assert.ok(value(p, 'turret_leaf_cache_total', { result: 'mint' }) >= 1);
    assert.ok(value(p, 'turret_leaf_cache_total', { result: 'hit' }) >= 1);
    assert.equal(value(p, 'turret_leaf_mint_seconds_count'), value(p, 'turret_leaf_cache_total', { result: 'mint' }), 'every mint is timed');
    assert.ok(value(p, 'turret_injections_total', { secret: 'echo-token' }) >= 2);
    assert.ok(value(p, 'turret_redactions_total', { type: 'secret' }) >= 2);
    assert.ok(value(p, 'turret_connects_refused_total', { class: 'loopback' }) >= 1);
    assert.equal(value(p, 'turret_ready'), 1);
    assert.ok(value(p, 'turret_audit_records_total', { event: 'request', outcome: 'completed' }) >= 2);
    assert.ok(value(p, 'turret_audit_records_total', { event: 'tunnel_open', outcome: 'allowed' }) >= 3);
    held.socket.destroy();
    const end = Date.now() + 5_000;
    for (;;) {
      const q = parsePrometheusText((await httpGet(admin, '/metrics', auth)).body);
      if (value(q, 'turret_open_tunnels') === 0) break;
      assert.ok(Date.now() < end, 'open tunnels return to 0 after the client closes');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  it('counts reloads ok and failed; /readyz shows the refused reload until a good one', async () => {
    writeFileSync(path.join(t.rulesDir, 'ops.yaml'), `${ruleFile(rules())}\n  oops: [`);
    await sighupAndWait('reload refused', 1);
    let r = JSON.parse((await httpGet(admin, '/readyz', auth)).body);
    assert.equal(r.ready, true, 'the previous rules keep serving, so still ready');
    assert.equal(r.last_reload_error.why, 'SIGHUP');
    assert.ok(r.last_reload_error.problems.some((x: string) => x.includes('ops.yaml')));
    let p = parsePrometheusText((await httpGet(admin, '/metrics', auth)).body);
    assert.equal(value(p, 'turret_reloads_total', { result: 'failed' }), 1);
    writeRules(t.rulesDir, { 'ops.yaml': rules() });
    await sighupAndWait('rules reloaded', 1);
    r = JSON.parse((await httpGet(admin, '/readyz', auth)).body);
    assert.equal(r.last_reload_error, null);
    p = parsePrometheusText((await httpGet(admin, '/metrics', auth)).body);
    assert.equal(value(p, 'turret_reloads_total', { result: 'ok' }), 1);
    assert.ok(value(p, 'turret_last_reload_success_timestamp_seconds') > Date.now() / 1000 - 60);
  });

  it('/readyz is 503 and names the secret while a secret source has no value', async () => {
    writeRules(t.rulesDir, { 'ops.yaml': rules([{ name: 'missing-token', from: { env: 'TEST_OPS_NOT_SET' }, hosts: ['echo.turret.test:*'] }]) });
    await sighupAndWait('rules reloaded', 2);
    const r = await httpGet(admin, '/readyz', auth);
    assert.equal(r.status, 503);
    const j = JSON.parse(r.body);
    assert.equal(j.checks.secrets, false);
    assert.deepEqual(j.missing_secrets, ['missing-token']);
    assert.equal(value(parsePrometheusText((await httpGet(admin, '/metrics', auth)).body), 'turret_ready'), 0);
  });
});
