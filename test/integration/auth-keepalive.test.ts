/**
 * Plain HTTP proxy credentials on one keep-alive connection (a raw socket, so every request
 * surely shares it): a connection remembers the credential it last proved (proxy/stages/
 * auth-memo.ts), and what must still hold per request is checked here — a wrong credential after
 * a good one is 407, another agent's credential on the same connection is that agent, a
 * duplicated header is 400, and a token that changed in its file or a rules reload that removes
 * the agent ends the old credential at once, and a throttled address is throttled on it too.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type net from 'node:net';
import { basicAuth, connectProxy, readResponse, type RawResponse } from '../helpers/raw-proxy.js';
import { agentToken, startTurret, waitForAudit, waitForLog, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, writeRules, type RuleFile } from '../helpers/rules.js';

describe('proxy credentials on one keep-alive plain HTTP connection', () => {
  let t: TurretProc;
  let up: Upstream;
  let sock: net.Socket;
  let tokenB = '';
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-it-auth-'));
  const tokenFile = path.join(dir, 'agent-a-token');
  let tokenA = `fake_a_${randomBytes(16).toString('hex')}`;
  const rules = (agents: string[]): RuleFile => ({
    agents: agents.map((n) => (n === 'a' ? ({ name: 'a', token: { file: tokenFile } } as unknown as string) : n)),
    rules: [{ name: 'reads', agents, methods: ['read'], hosts: ['read.turret.test:*'], schemes: ['http'], unsafe_addresses: LOOPBACK }],
    local: ['read.turret.test'],
  });

  const ask = async (p: string, head: string): Promise<RawResponse> => {
    const r = readResponse(sock);
    sock.write(`GET http://read.turret.test:${up.port}${p} HTTP/1.1\r\nHost: read.turret.test:${up.port}\r\n${head}\r\n`);
    return r;
  };
  const auth = (agent: string, token: string): string => `Proxy-Authorization: ${basicAuth(agent, token)}\r\n`;

  before(async () => {
    writeFileSync(tokenFile, `${tokenA}\n`);
    up = await startUpstream({ tls: false });
    t = await startTurret({ rules: { 'r.yaml': rules(['a', 'b']) } });
    tokenB = await agentToken(t, 'b');
    sock = await connectProxy(t.port);
  });

  after(async () => {
    sock?.destroy();
    await t?.stop();
    await up?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every request is authenticated on its own, whatever the connection proved before', async () => {
    const seen = up.received.length;
    assert.equal((await ask('/k1', auth('a', tokenA))).status, 200);
    assert.equal((await ask('/k2', auth('a', tokenA))).status, 200, 'the same credential again');

    const wrong = await ask('/k3', auth('a', `${tokenA}x`));
    assert.equal(wrong.status, 407, 'a wrong credential after a good one on the same connection');
    assert.equal(wrong.headers['x-turret-error'], 'proxy_auth_invalid');

    const none = await ask('/k4', '');
    assert.equal(none.status, 407, 'no credential after a good one');
    assert.equal(none.headers['x-turret-error'], 'proxy_auth_required');

    assert.equal((await ask('/k6', auth('b', tokenB))).status, 200, "another agent's credential on the same connection");
    assert.equal((await ask('/k7', auth('a', tokenA))).status, 200, 'and back');
    assert.deepEqual(
      up.received.slice(seen).map((r) => r.url),
      ['/k1', '/k2', '/k6', '/k7'],
      'only the authenticated requests reached the upstream',
    );
    // Records are appended in the order they are written: once /k7's is there, all before it are.
    const agents: Record<string, unknown> = {};
    for (const p of ['/k7', '/k1', '/k2', '/k6']) agents[p] = (await waitForAudit(t, (x) => x.event === 'request' && x.path === p, 20_000))?.agent;
    assert.deepEqual(agents, { '/k7': 'a', '/k1': 'a', '/k2': 'a', '/k6': 'b' });
    assert.deepEqual(
      t
        .audit()
        .filter((x) => x.event === 'request' && typeof x.code === 'string')
        .map((x) => x.code),
      ['proxy_auth_invalid', 'proxy_auth_required'],
      'one record per refused request, with its cause',
    );
    // Last: a 400 closes the connection (its framing is not trusted after it).
    const twice = await ask('/k5', auth('a', tokenA) + auth('a', tokenA));
    assert.equal(twice.status, 400, 'the proved credential twice is still a duplicate');
    assert.equal(twice.headers['x-turret-error'], 'bad_request');
  });

  it('a token changed in its file ends the old credential on a connection that proved it', async () => {
    sock.destroy();
    sock = await connectProxy(t.port);
    assert.equal((await ask('/r1', auth('a', tokenA))).status, 200);
    const old = tokenA;
    tokenA = `fake_a2_${randomBytes(20).toString('hex')}`; // another length: the file cache sees the change by size too
    writeFileSync(tokenFile, `${tokenA}\n`);
    const stale = await ask('/r2', auth('a', old));
    assert.equal(stale.status, 407, 'the old token, on the connection that proved it');
    assert.equal(stale.headers['x-turret-error'], 'proxy_auth_invalid');
    assert.equal((await ask('/r3', auth('a', tokenA))).status, 200, 'the new token');
    assert.ok(!up.received.some((r) => r.url === '/r2'), 'the stale request never reached the upstream');
  });

  it('a rules reload that removes an agent ends its credential on a connection that proved it', async () => {
    sock.destroy();
    sock = await connectProxy(t.port);
    assert.equal((await ask('/p1', auth('b', tokenB))).status, 200);
    assert.equal((await ask('/p2', auth('b', tokenB))).status, 200, 'proved, and the same value again');
    const mark = t.stderr().length;
    writeRules(t.rulesDir, { 'r.yaml': rules(['a']) });
    await waitForLog(t, /"msg":"rules reloaded/, mark);
    const gone = await ask('/p3', auth('b', tokenB));
    assert.equal(gone.status, 407, 'the removed agent, on the connection that proved it');
    assert.equal(gone.headers['x-turret-error'], 'proxy_auth_invalid');
    assert.equal((await ask('/p4', auth('a', tokenA))).status, 200, 'the agent that stays');
    assert.ok(!up.received.some((r) => r.url === '/p3'), 'the removed agent never reached the upstream');
    // Records are appended in order: once /p4's is there, /p3's refusal (written before) is too.
    assert.equal((await waitForAudit(t, (x) => x.event === 'request' && x.path === '/p4', 20_000))?.agent, 'a');
    const refused = t.audit().filter((x) => x.event === 'request' && x.code === 'proxy_auth_invalid');
    assert.equal(refused.length, 3, 'one refusal record each: /k3, /r2 and /p3');
    assert.equal(refused[2]?.agent, null, 'the refusal is attributed to no agent');
  });

  // Last: it leaves this address throttled.
  it('a credential the connection proved is throttled like any other once its address fails too often', async () => {
    sock.destroy();
    sock = await connectProxy(t.port);
    assert.equal((await ask('/t1', auth('a', tokenA))).status, 200, 'proved on this connection');
    const guesser = await connectProxy(t.port);
    try {
      let last: RawResponse | undefined;
      // Bounded: the bucket holds AUTH_FAIL_BURST (10) failures; earlier tests spent some of them.
      for (let i = 0; i < 30 && last?.status !== 429; i++) {
        const r = readResponse(guesser);
        guesser.write(`GET http://read.turret.test:${up.port}/guess HTTP/1.1\r\nHost: read.turret.test:${up.port}\r\n${auth('a', `guess${i}`)}\r\n`);
        last = await r;
      }
      assert.equal(last?.status, 429, 'the guessing connection is throttled');
    } finally {
      guesser.destroy();
    }
    const held = await ask('/t2', auth('a', tokenA));
    assert.equal(held.status, 429, 'the proved credential on its own connection is throttled too, not waved through');
    assert.equal(held.headers['x-turret-error'], 'proxy_auth_throttled');
    assert.ok(Number(held.headers['retry-after']) > 0, 'with Retry-After');
    assert.ok(!up.received.some((r) => r.url === '/t2' || r.url === '/guess'), 'neither reached the upstream');
  });
});
