/**
 * Hostile agents (issue #12), policy holes, through the real turret process with real clients
 * (curl; undici's WebSocket client): deny rules spelled around with letter case and encodings,
 * WebSocket upgrades under a reads-only rule, and the method overrides frameworks obey.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ProxyAgent, WebSocket } from 'undici';
import { WebSocketServer } from 'ws';
import { curl, type CurlResult } from '../helpers/curl.js';
import { agentToken, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { FIXTURES, startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

function rules(): RuleFile {
  return {
    agents: ['a'],
    rules: [
      { name: 'shop', methods: ['any'], hosts: ['shop.turret.test:*'], unsafe_addresses: LOOPBACK },
      { name: 'no-admin', action: 'deny', methods: ['any'], hosts: ['shop.turret.test:*'], paths: ['/admin/**', '/keys/**'], description: 'admin pages are off limits' },
      { name: 'reads', methods: ['read', 'GET'], hosts: ['read.turret.test:*', 'chat.turret.test:*'], unsafe_addresses: LOOPBACK },
      { name: 'chat', methods: ['websocket'], hosts: ['chat.turret.test:*'], paths: ['/socket'] },
    ],
    local: ['shop.turret.test', 'read.turret.test', 'chat.turret.test'],
  };
}

describe('hostile agents: letter case, upgrades, overrides', () => {
  let t: TurretProc;
  let up: Upstream;
  let wsServer: https.Server;
  let wsPort = 0;
  let upgrades = 0;
  let token = '';

  const run = (args: string[]): Promise<CurlResult> =>
    curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `a:${token}`, '--cacert', path.join(t.caDir, 'ca.crt'), '--path-as-is', ...args]);

  before(async () => {
    up = await startUpstream();
    wsServer = https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) });
    const wss = new WebSocketServer({ server: wsServer });
    wss.on('connection', (sock, req) => {
      upgrades++;
      sock.on('message', (m) => sock.send(`echo ${String(m)} on ${req.url}`));
    });
    await new Promise<void>((r) => wsServer.listen(0, '127.0.0.1', () => r()));
    wsPort = (wsServer.address() as AddressInfo).port;
    t = await startTurret({ rules: { 'r.yaml': rules() }, args: ['--admin', 'off'] });
    token = await agentToken(t, 'a');
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    wsServer?.closeAllConnections();
    wsServer?.close();
  });

  it('a deny on /admin/** refuses every letter case and encoding of it, and nothing reaches the upstream', async () => {
    const before = up.received.length;
    const spellings = [
      '/ADMIN/users/42',
      '/Admin/users/42',
      '/%41dmin/users/42', // %41 = A
      '/%61DMIN/', // %61 = a
      '/adm%C4%B1n/users/42', // dotless ı upper-cases to I
      '/adm%C4%B0n/users/42', // Turkish İ: a Turkish-locale server reads i
      '/%EF%BC%A1dmin/users/42', // fullwidth Ａ
      '/%E2%84%AAeys/1', // Kelvin sign K folds to k: /keys
      '/public/..%2F..%2FADMIN/x', // a decoding server's view, folded
      '/shop/../ADMIN/./x',
    ];
    for (const p of spellings) {
      const r = await run(['-X', 'DELETE', `https://shop.turret.test:${up.port}${p}`]);
      assert.equal(r.status, 403, `${p}: ${r.raw}`);
      assert.equal(r.headers['x-turret-error'], 'policy_denied', p);
      assert.match(r.body, /denied by rule no-admin .*admin pages are off limits/, p);
    }
    assert.equal(up.received.length, before, 'no spelling reached the upstream');
    const rec = await waitForAudit(t, (x) => x.outcome === 'denied' && String(x.path ?? '').includes('%EF%BC%A1dmin'), 20_000);
    assert.equal(rec?.code, 'policy_denied');
    assert.match(String(rec?.rule), /r\.yaml:\d+/);
  });

  it('folding widens denies only: neighbours of the denied path still pass', async () => {
    for (const p of ['/administrator', '/shop/admin', '/monkeys/1', '/%C5%BFhop/x']) {
      const r = await run([`https://shop.turret.test:${up.port}${p}`]);
      assert.equal(r.status, 200, `${p}: ${r.raw}`);
    }
  });

  it('a WebSocket upgrade is refused under read/GET and passes only where a rule lists websocket', async () => {
    // curl sends the handshake as written: every spelling of Upgrade, with or without Connection.
    const hs = ['-H', 'Sec-WebSocket-Version: 13', '-H', `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`];
    for (const [upg, conn] of [
      ['websocket', 'Upgrade'],
      ['WebSocket', 'keep-alive, Upgrade'],
      ['WEBSOCKET', null],
      ['h2c, websocket', 'upgrade'],
    ] as const) {
      const args = [...hs, '-H', `Upgrade: ${upg}`, ...(conn ? ['-H', `Connection: ${conn}`] : [])];
      const r = await run([...args, `https://read.turret.test:${wsPort}/socket`]);
      assert.equal(r.status, upg.startsWith('h2c') ? 400 : 403, `${upg}/${conn}: ${r.raw}`);
      if (r.status === 403) {
        assert.equal(r.headers['x-turret-error'], 'policy_denied');
        assert.match(r.body, /WebSocket upgrade \(needs websocket or any\)/);
      }
      const other = await run([...args, `https://chat.turret.test:${wsPort}/elsewhere`]);
      assert.equal(other.status, upg.startsWith('h2c') ? 400 : 403, `chat, path not listed: ${other.raw}`);
    }
    assert.equal(upgrades, 0, 'no upgrade reached the upstream');
    // Plain GETs to the same host are still reads.
    const plain = await run([`https://read.turret.test:${up.port}/socket`]);
    assert.equal(plain.status, 200);

    const ca = readFileSync(path.join(t.caDir, 'ca.crt'), 'utf8');
    const dispatcher = new ProxyAgent({ uri: `http://127.0.0.1:${t.port}`, token: `Basic ${Buffer.from(`a:${token}`).toString('base64')}`, requestTls: { ca } });
    const ws = new WebSocket(`wss://chat.turret.test:${wsPort}/socket`, { dispatcher } as never);
    const got = await new Promise<string>((resolve, reject) => {
      ws.onopen = () => ws.send('DELETE /users/42');
      ws.onmessage = (e) => resolve(String(e.data));
      ws.onerror = () => reject(new Error('websocket error'));
    });
    await new Promise<void>((resolve) => {
      ws.onclose = () => resolve();
      ws.close();
    });
    assert.equal(got, 'echo DELETE /users/42 on /socket');
    assert.equal(upgrades, 1);
    await dispatcher.destroy();
    const rec = await waitForAudit(t, (x) => x.host === 'chat.turret.test' && x.status === 101, 20_000);
    assert.equal(rec?.outcome, 'completed', JSON.stringify(t.audit().slice(-3)));
  });

  it('method overrides in X-Original-Method, X-Original-HTTP-Method, X-Method and ?_method are decided', async () => {
    const before = up.received.length;
    const base = `https://read.turret.test:${up.port}/items/1`;
    const cases: Array<[string[], string]> = [
      [['-H', 'X-Original-Method: DELETE'], base],
      [['-H', 'x-original-http-method: put'], base],
      [['-H', 'X-METHOD: Patch'], base],
      [['-H', 'X-Method: GET', '-H', 'X-Method: DELETE'], base], // duplicated: every value counts
      [[], `${base}?_method=DELETE`],
      [[], `${base}?a=1&%5Fmethod=delete`],
      [[], `${base}?_METHOD=Put`],
      [[], `${base}?_method=GET&_method=DELETE`],
    ];
    for (const [args, url] of cases) {
      const r = await run([...args, url]);
      assert.equal(r.status, 403, `${args.join(' ')} ${url}: ${r.raw}`);
      assert.equal(r.headers['x-turret-error'], 'policy_denied');
      assert.match(r.body, /asks the upstream to treat it as (DELETE|PUT|PATCH)/);
    }
    for (const [args, url] of [
      [['-H', 'X-Method: DE LETE'], base],
      [[], `${base}?_method=DE%20LETE`],
      [[], `${base}?_method=`],
    ] as Array<[string[], string]>) {
      const r = await run([...args, url]);
      assert.equal(r.status, 400, r.raw);
      assert.equal(r.headers['x-turret-error'], 'bad_request');
    }
    assert.equal(up.received.length, before, 'nothing reached the upstream');
    const ok = await run([`${base}?_method=get`]);
    assert.equal(ok.status, 200, 'an override naming the request method itself passes');
  });
});
