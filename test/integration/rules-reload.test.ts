/**
 * Rules while traffic flows: a bounded loop of requests keeps getting answers while broken rule
 * files (bad YAML, failing examples) are dropped in; the old rules keep serving and the error is
 * logged with its file:line:col. A valid change is picked up, including by requests inside a
 * tunnel that was opened before it. Also: rate limits answer 429 with Retry-After, and
 * `turret rules explain` gives the same reason as the denial body.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { agentToken, startTurret, until, type TurretProc } from '../helpers/turret.js';
import { LOOPBACK, writeRules, type Rule, type RuleFile } from '../helpers/rules.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { keepAliveTunnel } from '../helpers/tunnel-client.js';

const base = (extra: Rule[] = []): RuleFile => ({
  agents: ['agent-a'],
  rules: [
    { name: 'echo', methods: ['read'], hosts: ['echo.turret.test:*'], unsafe_addresses: LOOPBACK },
    { name: 'limited', methods: ['read'], hosts: ['limited.turret.test:*'], unsafe_addresses: LOOPBACK, rate_limit: { requests: 2, per: '1m' } },
    ...extra,
  ],
  local: ['echo.turret.test', 'limited.turret.test'],
});

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe('rules under traffic', () => {
  let t: TurretProc;
  let plain: Upstream;
  let secure: Upstream;
  let auth: string;
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });

  const get = (url: string, method = 'GET'): Promise<Res> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: t.port, method, path: url, agent: keepAlive, headers: { 'proxy-authorization': auth } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
  const waitLog = async (re: RegExp, from: number): Promise<string> => {
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      const m = re.exec(t.stderr().slice(from));
      if (m) return m[0];
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`no log line ${re} in:\n${t.stderr().slice(from)}`);
  };

  before(async () => {
    plain = await startUpstream({ tls: false });
    secure = await startUpstream();
    t = await startTurret({ rules: { 'main.yaml': base() } });
    const token = await agentToken(t, 'agent-a');
    auth = `Basic ${Buffer.from(`agent-a:${token}`).toString('base64')}`;
  });

  after(async () => {
    keepAlive.destroy();
    await t?.stop();
    await plain?.close();
    await secure?.close();
  });

  it('drops no request while broken rule files are loaded; the old rules keep serving', async () => {
    const results: number[] = [];
    let stop = false;
    const loop = (async () => {
      for (let i = 0; i < 2_000 && !stop; i++) {
        const batch = await Promise.all([0, 1, 2, 3].map((k) => get(`http://echo.turret.test:${plain.port}/n${i}-${k}`)));
        results.push(...batch.map((r) => r.status));
      }
    })();
    // Requests are answered before, between and after the two refused reloads: each step waits for
    // the next batch of answers (an event), whatever the machine's speed.
    const nextBatch = (n: number): Promise<void> => until(() => results.length > n, 'the next batch of answers');
    await nextBatch(0);
    const mark = t.stderr().length;
    writeFileSync(path.join(t.rulesDir, 'zz-broken.yaml'), 'rules:\n  - { methods: [read], hosts: [a.test], pahts: [/x] }\n');
    const line = await waitLog(/"msg":"reload refused[^\n]*/, mark);
    assert.match(line, /zz-broken\.yaml:2:\d+: rules\[0\]\.pahts: unknown key; did you mean \\"paths\\"\?/);
    await nextBatch(results.length);
    const mark2 = t.stderr().length;
    writeFileSync(path.join(t.rulesDir, 'zz-broken.yaml'), `examples:\n  - { agent: agent-a, request: "GET http://echo.turret.test:${plain.port}/", expect: deny }\n`);
    assert.match(await waitLog(/"msg":"reload refused[^\n]*/, mark2), /expects deny, but the rules allow it/);
    await nextBatch(results.length);
    stop = true;
    await loop;
    assert.deepEqual([...new Set(results)], [200], 'every request during the broken reloads was answered under the old rules');
    rmSync(path.join(t.rulesDir, 'zz-broken.yaml'));
  });

  it('picks up a valid change, also for the next request inside an already open tunnel', async () => {
    const ca = readFileSync(path.join(t.caDir, 'ca.crt'));
    const tunnel = keepAliveTunnel({ proxyPort: t.port, auth, host: 'echo.turret.test', port: secure.port, ca });
    const inTunnel = tunnel.get;
    assert.equal((await inTunnel('/blocked/a')).status, 200);
    const mark = t.stderr().length;
    writeRules(t.rulesDir, {
      'main.yaml': base([{ name: 'no-blocked', action: 'deny', methods: 'any', hosts: ['echo.turret.test:*'], paths: ['/blocked/**'], description: 'blocked for this test' }]),
    });
    await waitLog(/"msg":"rules reloaded/, mark);
    const r = await inTunnel('/blocked/b');
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-turret-error'], 'policy_denied');
    assert.match(r.body, /denied by rule no-blocked \(.*main\.yaml:\d+\): blocked for this test/);
    assert.equal((await inTunnel('/open')).status, 200);
    assert.equal(tunnel.tunnels(), 1, 'all three requests used the one tunnel');
    tunnel.close();
    assert.equal((await get(`http://echo.turret.test:${plain.port}/blocked/c`)).status, 403, 'and outside tunnels');
  });

  it('answers 429 with Retry-After once a rule’s rate limit is used up', async () => {
    const url = `http://limited.turret.test:${plain.port}/`;
    assert.equal((await get(url)).status, 200);
    assert.equal((await get(url)).status, 200);
    const r = await get(url);
    assert.equal(r.status, 429);
    assert.equal(r.headers['x-turret-error'], 'rate_limited');
    const after = Number(r.headers['retry-after']);
    assert.ok(after >= 1 && after <= 60, `Retry-After ${r.headers['retry-after']}`);
    assert.match(r.body, /rule limited .* allows 2 per 1m/);
    assert.equal((await get(`http://echo.turret.test:${plain.port}/x`)).status, 200, 'other rules are not limited');
  });

  it('turret rules explain prints the decision, rule and the same reason the denial body carries, sending nothing', async () => {
    const url = `http://echo.turret.test:${plain.port}/thing`;
    const before = plain.received.length;
    const x = await t.cli(['rules', 'explain', '--agent', 'agent-a', 'DELETE', url]);
    assert.equal(x.code, 0, x.stderr);
    assert.equal(plain.received.length, before, 'explain sent nothing');
    assert.match(x.stdout, /^decision: deny \(policy_denied\)$/m);
    assert.match(x.stdout, /^rule: .*main\.yaml:\d+ \(echo\)$/m);
    const reason = /^reason: (.*)$/m.exec(x.stdout)?.[1];
    const r = await get(url, 'DELETE');
    assert.equal(r.status, 403);
    assert.equal(/^Reason: (.*)$/m.exec(r.body)?.[1], reason);
    const ok = await t.cli(['rules', 'explain', '--agent', 'agent-a', 'GET', url]);
    assert.match(ok.stdout, /^decision: allow$/m);
    const bad = await t.cli(['rules', 'explain', '--agent', 'nobody', 'GET', url]);
    assert.equal(bad.code, 2);
  });
});
