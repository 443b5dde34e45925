/**
 * Adversarial review through the real turret process (docs/security.md, "Reviewed attacks"):
 * ways an agent tried to get a real secret back or use another agent's credential, each of which
 * worked before its fix.
 *
 * - a refused WebSocket handshake whose body echoes the injected secret, split by chunked framing
 *   (the scrubber saw chunk-size lines inside the secret) or gzip-compressed (it saw nothing);
 * - an upstream reflecting the secret in a response header *name*;
 * - OAuth capture: agent B's login replaced agent A's captured token, so A's handle injected B's.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { curl, type CurlResult } from '../helpers/curl.js';
import { agentToken, startTurret, type TurretProc } from '../helpers/turret.js';
import { FIXTURES, startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const SECRET = `fake_sec_${randomBytes(18).toString('hex')}`;
const TOKENS = [`fake_tokA_${randomBytes(18).toString('hex')}`, `fake_tokB_${randomBytes(18).toString('hex')}`];

function rules(upPort: number): RuleFile {
  return {
    agents: ['a', 'b'],
    secrets: [{ name: 'api', from: { env: 'T_SECRET' }, hosts: ['*.turret.test:*'] }],
    rules: [
      {
        name: 'all',
        methods: ['read', 'POST', 'websocket'],
        hosts: ['up.turret.test:*', 'ws.turret.test:*', 'auth.turret.test:*', 'api.turret.test:*'],
        unsafe_addresses: LOOPBACK,
      },
    ],
    scrub: { oauth_capture: [{ name: 'acme', token_url: `https://auth.turret.test:${upPort}/oauth/token`, hosts: ['api.turret.test:*'] }] },
    local: ['up.turret.test', 'ws.turret.test', 'auth.turret.test', 'api.turret.test'],
  };
}

/** CONNECT through the proxy, TLS with Turret's CA, send `request` as written; everything until close. */
function tunnelRaw(t: TurretProc, cred: string, host: string, port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(t.port, '127.0.0.1');
    const auth = Buffer.from(cred).toString('base64');
    sock.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`);
    let head = '';
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      sock.off('data', onData);
      if (!head.startsWith('HTTP/1.1 200')) return reject(new Error(head));
      const s = tls.connect({ socket: sock as Socket, servername: host, ca: readFileSync(path.join(t.caDir, 'ca.crt')) });
      let out = Buffer.alloc(0);
      const timer = setTimeout(() => s.destroy(), 8000);
      s.on('secureConnect', () => s.write(request));
      s.on('data', (d: Buffer) => (out = Buffer.concat([out, d])));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearTimeout(timer);
        resolve(out.toString('latin1'));
      });
    };
    sock.on('data', onData);
    sock.on('error', reject);
  });
}

describe('security review: reflections and cross-agent credentials', () => {
  let t: TurretProc;
  let up: Upstream;
  let ws: https.Server;
  let wsPort = 0;
  let tokenCalls = 0;
  const wsSeen: http.IncomingHttpHeaders[] = [];
  const creds: Record<string, string> = {};
  const seen: string[] = [];

  const req = async (agent: string, args: string[]): Promise<CurlResult> => {
    const r = await curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `${agent}:${creds[agent]}`, '--cacert', path.join(t.caDir, 'ca.crt'), ...args]);
    seen.push(r.raw, r.stderr);
    return r;
  };
  const issue = async (agent: string): Promise<string> => (await t.cli(['handle', 'issue', '--agent', agent, '--secret', 'api', '--ttl', '1h'])).stdout.trim();

  before(async () => {
    up = await startUpstream({
      handler: (req, res) => {
        const auth = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
        switch (new URL(req.url ?? '/', 'https://x').pathname) {
          case '/oauth/token': {
            const tok = TOKENS[tokenCalls++ % 2] ?? '';
            res.writeHead(200, { 'content-type': 'application/json' });
            return res.end(JSON.stringify({ access_token: tok, token_type: 'bearer', expires_in: 3600 }));
          }
          case '/header-name':
            res.writeHead(200, { [`x-echo-${auth}`]: '1', 'content-type': 'text/plain' });
            return res.end('ok');
          default:
            res.writeHead(200, { 'content-type': 'application/json' });
            return res.end(JSON.stringify({ auth: req.headers.authorization }));
        }
      },
    });
    ws = https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) });
    ws.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
      wsSeen.push(req.headers);
      socket.on('error', () => undefined);
      const echoed = `auth=${String(req.headers.authorization)}`;
      if (req.url === '/gzip') {
        const z = zlib.gzipSync(echoed);
        socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 403 Forbidden\r\nContent-Encoding: gzip\r\nContent-Length: ${z.length}\r\n\r\n`), z]));
        return;
      }
      // Chunk boundaries inside the secret: "…fake_se" | "c_0123…" | rest.
      const cut = echoed.indexOf('fake_') + 7;
      const chunks = [echoed.slice(0, cut), echoed.slice(cut, cut + 9), echoed.slice(cut + 9)];
      socket.write('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n');
      socket.end(chunks.map((c) => `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`).join('') + '0\r\n\r\n');
    });
    await new Promise<void>((r) => ws.listen(0, '127.0.0.1', () => r()));
    wsPort = (ws.address() as AddressInfo).port;
    t = await startTurret({ rules: { 'r.yaml': rules(up.port) }, env: { T_SECRET: SECRET }, args: ['--admin', 'off'] });
    for (const agent of ['a', 'b']) creds[agent] = await agentToken(t, agent);
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    ws?.closeAllConnections();
    ws?.close();
    const all = [...seen, t.stdout(), t.stderr(), t.auditText()].join('\n');
    for (const s of [SECRET, ...TOKENS]) assert.ok(!all.includes(s), 'no output holds a real secret');
  });

  const upgrade = (h: string, p: string): string =>
    `GET ${p} HTTP/1.1\r\nHost: ws.turret.test:${wsPort}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nAccept-Encoding: gzip\r\nAuthorization: Bearer ${h}\r\n\r\n`;

  it('a refused WebSocket handshake with a chunked body split inside the secret: the body is unframed, then scrubbed', async () => {
    const h = await issue('a');
    const raw = await tunnelRaw(t, `a:${creds.a}`, 'ws.turret.test', wsPort, upgrade(h, '/chunked'));
    seen.push(raw);
    assert.match(raw, /^HTTP\/1\.1 403/, raw);
    // What a client that decodes chunked framing would read must not hold the secret either.
    const dechunked = raw.replace(/\r\n[0-9a-f]+\r\n/gi, '');
    assert.ok(!raw.includes(SECRET) && !dechunked.includes(SECRET), `the secret came back: ${raw}`);
    assert.ok(raw.includes(`auth=Bearer ${h}`), `the injected secret is echoed back as the handle: ${raw}`);
    assert.equal(wsSeen.at(-1)?.['accept-encoding'], undefined, 'no content coding is asked for on an upgrade');
  });

  it('a refused WebSocket handshake with a gzip body is relayed like any response: decoded, then scrubbed', async () => {
    const h = await issue('a');
    const raw = await tunnelRaw(t, `a:${creds.a}`, 'ws.turret.test', wsPort, upgrade(h, '/gzip'));
    seen.push(raw);
    assert.match(raw, /^HTTP\/1\.1 403/, raw);
    assert.doesNotMatch(raw, /content-encoding/i, 'sent decoded');
    const dechunked = raw.replace(/\r\n[0-9a-f]+\r\n/gi, '');
    assert.ok(!raw.includes(SECRET) && !dechunked.includes(SECRET), raw);
    assert.ok(dechunked.includes(`auth=Bearer ${h}`), `the injected secret is echoed back as the handle: ${raw}`);
  });

  it('a secret reflected in a response header name is dropped, not passed', async () => {
    const h = await issue('a');
    const r = await req('a', ['-H', `Authorization: Bearer ${h}`, `https://up.turret.test:${up.port}/header-name`]);
    assert.equal(r.status, 200, r.raw);
    assert.ok(!r.raw.toLowerCase().includes(SECRET.toLowerCase()), r.raw);
    assert.equal(up.received.at(-1)?.headers.authorization, `Bearer ${SECRET}`, 'the secret was injected upstream');
  });

  it('OAuth capture keeps each agent its own token: B logging in does not hand A the token of B', async () => {
    const login = async (agent: string): Promise<string> => {
      const r = await req(agent, ['-d', 'grant_type=client_credentials', `https://auth.turret.test:${up.port}/oauth/token`]);
      assert.equal(r.status, 200, r.raw);
      return (JSON.parse(r.body) as { access_token: string }).access_token;
    };
    const ha = await login('a');
    const hb = await login('b');
    assert.match(ha, /^trt_/);
    const useA = await req('a', ['-H', `Authorization: Bearer ${ha}`, `https://api.turret.test:${up.port}/me`]);
    assert.equal(useA.status, 200, useA.raw);
    assert.equal(up.received.at(-1)?.headers.authorization, `Bearer ${TOKENS[0]}`, "agent a's handle must inject agent a's token");
    const useB = await req('b', ['-H', `Authorization: Bearer ${hb}`, `https://api.turret.test:${up.port}/me`]);
    assert.equal(useB.status, 200, useB.raw);
    assert.equal(up.received.at(-1)?.headers.authorization, `Bearer ${TOKENS[1]}`);
    const cross = await req('b', ['-H', `Authorization: Bearer ${ha}`, `https://api.turret.test:${up.port}/me`]);
    assert.equal(cross.headers['x-turret-error'], 'handle_wrong_agent');
  });
});
