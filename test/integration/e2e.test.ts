/**
 * End to end: real turret process, real curl, real HTTPS upstream on loopback. The upstream
 * echoes what it received, so tests assert that the real secret arrived there and that the
 * client, the audit log and Turret's own output never contain it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import path from 'node:path';
import { curl } from '../helpers/curl.js';
import { agentToken, assertNoSecrets, startTurret, turretOutputs, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const SECRET = `fake_echo_${randomBytes(18).toString('hex')}`;
const OTHER_SECRET = `fake_other_${randomBytes(18).toString('hex')}`;

function rules(): RuleFile {
  return {
    agents: ['agent-a', 'agent-b'],
    secrets: [
      { name: 'echo-token', from: { env: 'TEST_ECHO_TOKEN' }, hosts: ['echo.turret.test:*'], headers: ['x-api-key'] },
      { name: 'other-token', from: { env: 'TEST_OTHER_TOKEN' }, hosts: ['other.turret.test:*'] },
    ],
    rules: [
      { name: 'echo', methods: ['read', 'POST'], hosts: ['echo.turret.test:*', 'other.turret.test:*'], unsafe_addresses: LOOPBACK },
      { name: 'no-exception', methods: ['read'], hosts: ['loop.turret.test:*', '127.0.0.1:*', '2130706433:*'] },
    ],
    local: ['echo.turret.test', 'other.turret.test', 'loop.turret.test'],
  };
}

describe('turret end to end with curl', () => {
  let t: TurretProc;
  let up: Upstream;
  let plain: Upstream;
  let caFile: string;
  let tokenA: string;
  let tokenB: string;
  const curlOutputs: string[] = [];

  const issue = async (agent: string, secret: string, ttl = '1h'): Promise<string> => {
    const r = await t.cli(['handle', 'issue', '--agent', agent, '--secret', secret, '--ttl', ttl]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const proxyArgs = (agent = 'agent-a', token?: string): string[] => [
    '-x',
    `http://127.0.0.1:${t.port}`,
    '--proxy-user',
    `${agent}:${token ?? (agent === 'agent-a' ? tokenA : tokenB)}`,
    '--cacert',
    caFile,
  ];
  const run = async (args: string[]) => {
    const r = await curl(args);
    curlOutputs.push(r.raw, r.stderr);
    return r;
  };

  before(async () => {
    up = await startUpstream({
      handler: (req, res, body) => {
        const coders: Record<string, (b: Buffer) => Buffer> = { '/gzip': zlib.gzipSync, '/deflate': zlib.deflateSync, '/br': zlib.brotliCompressSync };
        const coder = coders[req.url ?? ''];
        if (req.url?.startsWith('/coding/')) {
          // A hostile upstream: a coding Turret cannot scan (or a stack of them) around a body
          // that holds the echoed secret. Several lines of one header are sent as such.
          const codings = decodeURIComponent(req.url.slice('/coding/'.length)).split('|');
          const z = zlib.gzipSync(Buffer.from(`token is ${req.headers.authorization ?? ''}`));
          res.setHeader('content-type', 'text/plain');
          res.setHeader('content-encoding', codings.length > 1 ? codings : (codings[0] ?? ''));
          res.setHeader('content-length', z.length);
          res.writeHead(200);
          res.end(z);
          return;
        }
        if (coder) {
          const z = coder(Buffer.from(`token is ${req.headers.authorization ?? ''}`));
          res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': (req.url ?? '').slice(1), 'content-length': z.length });
          res.end(z);
          return;
        }
        const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString() });
        res.writeHead(200, { 'content-type': 'application/json', 'x-echo-auth': String(req.headers.authorization ?? '') });
        res.end(out);
      },
    });
    plain = await startUpstream({ tls: false });
    t = await startTurret({ rules: { 'test.yaml': rules() }, env: { TEST_ECHO_TOKEN: SECRET, TEST_OTHER_TOKEN: OTHER_SECRET } });
    caFile = path.join(t.caDir, 'ca.crt');
    tokenA = await agentToken(t, 'agent-a');
    tokenB = await agentToken(t, 'agent-b');
    assert.ok(tokenA && tokenB, 'turret env prints the agent credentials');
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    await plain?.close();
    // Every output any party saw: curl, turret's stdout/stderr, the audit log.
    assertNoSecrets([['curl', curlOutputs.join('\n')], ...turretOutputs(t)], { 'the secret': SECRET, 'the other secret': OTHER_SECRET });
  });

  it('injects the real secret for a Bearer handle over CONNECT and scrubs it from the response', async () => {
    const h = await issue('agent-a', 'echo-token');
    const r = await run([...proxyArgs(), '-H', `Authorization: Bearer ${h}`, `https://echo.turret.test:${up.port}/repos?x=1`]);
    assert.equal(r.status, 200, r.raw + r.stderr);
    const last = up.received.at(-1);
    assert.equal(last?.headers.authorization, `Bearer ${SECRET}`, 'upstream received the real secret');
    assert.equal(last?.headers['proxy-authorization'], undefined, 'proxy credential is not forwarded');
    assert.ok(!r.raw.includes(SECRET));
    assert.ok(r.body.includes(h), 'the echoed secret is replaced by the agent’s handle');
    assert.equal(r.headers['x-echo-auth'], `Bearer ${h}`, 'response headers are scrubbed too');
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.outcome === 'completed' && x.path === '/repos?x=');
    assert.ok(rec, 'an audit record with the query value removed');
    assert.deepEqual(rec.secrets, ['echo-token']);
    assert.equal(rec.agent, 'agent-a');
    assert.equal(typeof (rec.fingerprints as Record<string, string>)['echo-token'], 'string');
  });

  it('injects into a header the secret names and into a Basic password', async () => {
    const h = await issue('agent-a', 'echo-token');
    let r = await run([...proxyArgs(), '-H', `x-api-key: ${h}`, `https://echo.turret.test:${up.port}/k`]);
    assert.equal(r.status, 200);
    assert.equal(up.received.at(-1)?.headers['x-api-key'], SECRET);
    r = await run([...proxyArgs(), '-u', `x-access-token:${h}`, `https://echo.turret.test:${up.port}/basic`]);
    assert.equal(r.status, 200);
    const auth = String(up.received.at(-1)?.headers.authorization);
    assert.equal(Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString(), `x-access-token:${SECRET}`);
  });

  it('decodes gzip, deflate and br responses to scrub them, and sends them identity-coded', async () => {
    const h = await issue('agent-a', 'echo-token');
    for (const coding of ['gzip', 'deflate', 'br']) {
      // No --compressed: whatever curl prints is what came over the wire from Turret.
      const r = await run([...proxyArgs(), '-H', `Accept-Encoding: ${coding}`, '-H', `Authorization: Bearer ${h}`, `https://echo.turret.test:${up.port}/${coding}`]);
      assert.equal(r.status, 200, coding);
      assert.equal(r.headers['content-encoding'], undefined, `${coding}: decoded by Turret`);
      assert.equal(r.body, `token is Bearer ${h}`, coding);
    }
  });

  it('refuses codings it cannot scan with 502, writes one record each, and keeps serving', async () => {
    const h = await issue('agent-a', 'echo-token');
    // Each of these stopped the whole process once (an unhandled stream error on the response path).
    const codings = ['zstd', 'compress', 'gzip, gzip', 'identity, gzip', 'gzip|gzip', 'x-unknown', 'GZIP, br'];
    for (const coding of codings) {
      const url = `https://echo.turret.test:${up.port}/coding/${encodeURIComponent(coding)}`;
      const r = await run([...proxyArgs(), '-H', `Authorization: Bearer ${h}`, url]);
      assert.equal(r.status, 502, `${coding}: ${r.raw}`);
      assert.equal(r.headers['x-turret-error'], 'upstream_coding_unsupported', coding);
      const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === `/coding/${encodeURIComponent(coding)}`);
      assert.equal(rec?.code, 'upstream_coding_unsupported', coding);
      assert.equal(rec?.outcome, 'failed', coding);
      // The process is alive and answers the next request.
      const ok = await run([...proxyArgs(), `https://echo.turret.test:${up.port}/after`]);
      assert.equal(ok.status, 200, `${coding}: the proxy still serves: ${ok.raw}${t.stderr()}`);
    }
    for (const coding of codings) {
      const recs = t.audit().filter((x) => x.event === 'request' && x.path === `/coding/${encodeURIComponent(coding)}`);
      assert.equal(recs.length, 1, `${coding}: exactly one record`);
    }
    assert.equal(t.proc.exitCode, null, 'turret is still running');
    assert.doesNotMatch(t.stderr(), /uncaught|RequestAbortedError/i);
  });

  it('refuses a method the rules do not allow with 403 and a stable code', async () => {
    const before = up.received.length;
    const r = await run([...proxyArgs(), '-X', 'DELETE', `https://echo.turret.test:${up.port}/x`]);
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-turret-error'], 'policy_denied');
    assert.match(r.body, /not a network fault/);
    assert.equal(up.received.length, before, 'nothing reached the upstream');
  });

  it('decides method-override headers too: a GET asking to be a DELETE is refused', async () => {
    const before = up.received.length;
    for (const h of ['X-HTTP-Method-Override: DELETE', 'X-HTTP-Method: delete', 'X-Method-Override: GET, PUT']) {
      const r = await run([...proxyArgs(), '-H', h, `https://echo.turret.test:${up.port}/x`]);
      assert.equal(r.status, 403, h);
      assert.equal(r.headers['x-turret-error'], 'policy_denied', h);
      assert.match(r.body, /asks the upstream to treat it as (DELETE|PUT)/, h);
    }
    const bad = await run([...proxyArgs(), '-H', 'X-HTTP-Method-Override: DE LETE', `https://echo.turret.test:${up.port}/x`]);
    assert.equal(bad.headers['x-turret-error'], 'bad_request');
    assert.equal(up.received.length, before, 'nothing reached the upstream');
    const ok = await run([...proxyArgs(), '-X', 'POST', '-H', 'X-HTTP-Method-Override: GET', `https://echo.turret.test:${up.port}/x`]);
    assert.equal(ok.status, 200, 'an override to an allowed method passes');
  });

  it('answers unknown agents and wrong credentials with 407', async () => {
    for (const args of [['-x', `http://127.0.0.1:${t.port}`, '--cacert', caFile], proxyArgs('nobody', 'x'), proxyArgs('agent-a', 'wrong')]) {
      const r = await run([...args, `http://echo.turret.test:${plain.port}/`]);
      assert.equal(r.status, 407);
      assert.match(r.headers['proxy-authenticate'] ?? '', /^Basic/);
      assert.match(r.headers['x-turret-error'] ?? '', /^proxy_auth_(required|invalid)$/);
      const c = await run([...args, `https://echo.turret.test:${up.port}/`]);
      assert.notEqual(c.code, 0, 'CONNECT without a valid credential fails');
      assert.match(c.raw, /407/);
    }
  });

  it('refuses a handle toward a host its secret is not bound to, and sends nothing', async () => {
    const h = await issue('agent-a', 'echo-token');
    const before = up.received.length;
    const r = await run([...proxyArgs(), '-H', `Authorization: Bearer ${h}`, `https://other.turret.test:${up.port}/`]);
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-turret-error'], 'handle_host_not_bound');
    assert.equal(up.received.length, before);
  });

  it('refuses a handle from another agent, an expired one and a forged one', async () => {
    const hB = await issue('agent-b', 'echo-token');
    let r = await run([...proxyArgs(), '-H', `Authorization: Bearer ${hB}`, `https://echo.turret.test:${up.port}/`]);
    assert.equal(r.headers['x-turret-error'], 'handle_wrong_agent');
    const hA = await issue('agent-a', 'echo-token');
    const forged = hA.slice(0, -6) + (hA.endsWith('AAAAAA') ? 'BBBBBB' : 'AAAAAA');
    r = await run([...proxyArgs(), '-H', `Authorization: Bearer ${forged}`, `https://echo.turret.test:${up.port}/`]);
    assert.equal(r.headers['x-turret-error'], 'handle_invalid');
    const short = await issue('agent-a', 'echo-token', '1s');
    // Until the 1 s lifetime has passed (bounded; each try is a real request).
    for (let i = 0; i < 100; i++) {
      r = await run([...proxyArgs(), '-H', `Authorization: Bearer ${short}`, `https://echo.turret.test:${up.port}/`]);
      if (r.headers['x-turret-error'] === 'handle_expired') break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-turret-error'], 'handle_expired');
  });

  it('refuses a handle on plain HTTP', async () => {
    const h = await issue('agent-a', 'echo-token');
    const r = await run([...proxyArgs(), '-H', `Authorization: Bearer ${h}`, `http://echo.turret.test:${plain.port}/`]);
    assert.equal(r.headers['x-turret-error'], 'handle_plain_http');
    assert.equal(plain.received.length, 0);
  });

  it('forwards plain HTTP absolute-form requests with keep-alive', async () => {
    const r = await run([...proxyArgs(), `http://echo.turret.test:${plain.port}/one`, `http://echo.turret.test:${plain.port}/two`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      plain.received.map((x) => x.url),
      ['/one', '/two'],
    );
    assert.equal(plain.connections, 1, 'both requests reused one upstream connection');
  });

  it('refuses names resolving to loopback and IP literals without an exception; nothing connects', async () => {
    const before = up.connections;
    for (const host of ['loop.turret.test', '127.0.0.1', '2130706433']) {
      const r = await run([...proxyArgs(), `http://${host}:${up.port}/`]);
      assert.equal(r.status, 403, `${host}: ${r.raw}`);
      assert.equal(r.headers['x-turret-error'], 'dest_address_forbidden', host);
      const c = await run([...proxyArgs(), `https://${host}:${up.port}/`]);
      assert.notEqual(c.status, 200, host);
    }
    assert.equal(up.connections, before, 'the loopback listener never received a connection');
  });

  it('answers 421 when the Host header disagrees with the CONNECT host', async () => {
    const r = await run([...proxyArgs(), '-H', 'Host: other.turret.test', `https://echo.turret.test:${up.port}/`]);
    assert.equal(r.status, 421);
    assert.equal(r.headers['x-turret-error'], 'misdirected_request');
  });
});
