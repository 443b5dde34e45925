/**
 * Hostile agents (issue #12), credentials: a repeated Proxy-Authorization (raw sockets: curl
 * sends one), credential guessing throttled per client address (curl from two loopback source
 * addresses), and handles never written verbatim to the audit log, Turret's logs or metrics.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { curl, type CurlResult } from '../helpers/curl.js';
import { adminPort, httpGet } from '../helpers/ops.js';
import { basicAuth, rawConnect, rawRequest } from '../helpers/raw-proxy.js';
import { agentToken, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const SECRET = `fake_auth_${randomBytes(18).toString('hex')}`;

function rules(): RuleFile {
  return {
    agents: ['a'],
    secrets: [{ name: 'api', from: { env: 'T_API' }, hosts: ['read.turret.test:*'] }],
    rules: [{ name: 'reads', methods: ['read'], hosts: ['read.turret.test:*'], unsafe_addresses: LOOPBACK }],
    local: ['read.turret.test'],
  };
}

describe('hostile agents: proxy credentials and handles in records', () => {
  let t: TurretProc;
  let up: Upstream;
  let token = '';
  const outputs: string[] = [];

  const run = async (args: string[], cred = `a:${token}`): Promise<CurlResult> => {
    const r = await curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', cred, '--cacert', path.join(t.caDir, 'ca.crt'), ...args]);
    outputs.push(r.raw, r.stderr);
    return r;
  };
  const metrics = async (): Promise<string> => (await httpGet(adminPort(t), '/metrics')).body;
  const metric = (text: string, series: string): number => Number(new RegExp(`^${series.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

  before(async () => {
    up = await startUpstream();
    t = await startTurret({ rules: { 'r.yaml': rules() }, env: { T_API: SECRET } });
    token = await agentToken(t, 'a');
  });

  after(async () => {
    await t?.stop();
    await up?.close();
  });

  it('two Proxy-Authorization headers are a 400, in either order, on plain requests and CONNECT', async () => {
    const good = basicAuth('a', token);
    const bad = basicAuth('a', 'wrong');
    const before = up.received.length;
    for (const pair of [
      [good, bad],
      [bad, good],
      [good, good],
    ]) {
      const head = pair.map((p) => `Proxy-Authorization: ${p}\r\n`).join('');
      const r = await rawRequest(t.port, `GET http://read.turret.test:${up.port}/x HTTP/1.1\r\nHost: read.turret.test:${up.port}\r\n${head}Connection: close\r\n\r\n`);
      assert.equal(r.status, 400, JSON.stringify(r));
      assert.equal(r.headers['x-turret-error'], 'bad_request');
      assert.match(r.body, /Proxy-Authorization appears 2 times/);
      const lower = await rawRequest(
        t.port,
        `GET http://read.turret.test:${up.port}/x HTTP/1.1\r\nHost: read.turret.test:${up.port}\r\nproxy-authorization: ${pair[0]}\r\nPROXY-AUTHORIZATION: ${pair[1]}\r\nConnection: close\r\n\r\n`,
      );
      assert.equal(lower.status, 400, 'letter case of the field name does not matter');
    }
    const c = await rawConnect(t.port, `read.turret.test:${up.port}`, `${good}\r\nProxy-Authorization: ${bad}`);
    c.socket.destroy();
    assert.equal(c.res.status, 400);
    assert.equal(c.res.headers['x-turret-error'], 'bad_request');
    assert.equal(up.received.length, before, 'nothing reached the upstream');
    const rec = await waitForAudit(t, (x) => x.event === 'tunnel_open' && x.code === 'bad_request', 20_000);
    assert.equal(rec?.outcome, 'denied');
  });

  it('failed credentials are throttled per client address: 10 tries, then 429 with Retry-After, even for the right one', async () => {
    const m0 = await metrics();
    const guesser = ['--interface', '127.0.0.7'];
    for (let i = 0; i < 10; i++) {
      const r = await run([...guesser, `http://read.turret.test:${up.port}/`], `a:guess${i}`);
      assert.equal(r.status, 407, `guess ${i}: ${r.raw}`);
      assert.equal(r.headers['x-turret-error'], 'proxy_auth_invalid');
    }
    for (const cred of ['a:guess10', `a:${token}`]) {
      const r = await run([...guesser, `http://read.turret.test:${up.port}/`], cred);
      assert.equal(r.status, 429, r.raw);
      assert.equal(r.headers['x-turret-error'], 'proxy_auth_throttled');
      const wait = Number(r.headers['retry-after']);
      assert.ok(Number.isInteger(wait) && wait >= 1 && wait <= 6, `Retry-After ${r.headers['retry-after']}`);
    }
    // CONNECT from the same address is throttled too (curl reports the proxy's CONNECT answer).
    const tunnel = await run([...guesser, '--proxytunnel', `https://read.turret.test:${up.port}/`]);
    assert.match(tunnel.raw, /^HTTP\/1\.1 429/m);
    // Another address is not affected, and requests without a credential are never throttled.
    const other = await run(['--interface', '127.0.0.8', `https://read.turret.test:${up.port}/`]);
    assert.equal(other.status, 200, other.raw);
    const rec = await waitForAudit(t, (x) => x.code === 'proxy_auth_throttled' && x.event === 'request', 20_000);
    assert.equal(rec?.status, 429);
    assert.match(String(rec?.client), /^127\.0\.0\.7:/);
    const m1 = await metrics();
    assert.equal(metric(m1, 'turret_proxy_auth_failures_total{result="invalid"}') - metric(m0, 'turret_proxy_auth_failures_total{result="invalid"}'), 10);
    assert.equal(metric(m1, 'turret_proxy_auth_failures_total{result="throttled"}') - metric(m0, 'turret_proxy_auth_failures_total{result="throttled"}'), 3);
  });

  it('a handle in a refused request is written to audit, logs and metrics as its id, never verbatim', async () => {
    const h = (await t.cli(['handle', 'issue', '--agent', 'a', '--secret', 'api', '--ttl', '1h'])).stdout.trim();
    assert.match(h, /^trt_/);
    const list = (await t.cli(['handle', 'list'])).stdout;
    const id = /^([0-9a-f]{32})\t/m.exec(list)?.[1] ?? '';
    assert.ok(id, list);
    const forged = `trt_${randomBytes(60).toString('base64url')}`;
    const encoded = `%74rt%5F${h.slice(4)}`;
    const base = `https://read.turret.test:${up.port}`;
    const refused = [
      await run(['-X', 'DELETE', `${base}/x/${h}`]),
      await run([`${base}/path/${h}/y`]),
      await run([`${base}/enc/${encoded}`]),
      await run([`${base}/forged/${forged}`]),
      await run(['-H', `X-Not-Listed: ${h}`, `${base}/header`]),
    ];
    for (const r of refused) assert.ok(r.status >= 400, r.raw);
    // The agent may see its own handle in a denial; the records may not hold it.
    assert.ok(await waitForAudit(t, (x) => String(x.path ?? '').includes('/forged/'), 20_000), 'the forged-handle record was written');
    assert.ok(await waitForAudit(t, (x) => String(x.path ?? '') === '/header', 20_000), 'the header record was written');
    const audit = t.auditText();
    const all = [audit, t.stderr(), t.stdout(), await metrics()].join('\n');
    for (const needle of [h, h.slice(4), encoded, forged, forged.slice(4)]) assert.ok(!all.includes(needle), `a handle spelling reached the records: ${needle.slice(0, 12)}…`);
    assert.ok(audit.includes(`/x/[handle:${id}]`), 'the refused path names the handle id');
    assert.ok(audit.includes(`/enc/[handle:${id}]`), 'the percent-encoded spelling too');
    assert.match(audit, /\/forged\/\[handle:unknown:[0-9a-f]{16}\]/);
    assert.ok(!outputs.join('\n').includes(SECRET), 'the secret itself never came back');
  });
});
