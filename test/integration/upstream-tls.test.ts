/**
 * Upstream TLS is verified: against the system roots only, the test upstream (signed by the
 * committed test-only CA) is refused with 502 upstream_tls_failed; with settings.upstream_ca_file
 * it is trusted. Also: a request body streams to the upstream and a response streams back before
 * the upstream has finished (nothing is buffered whole).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import http from 'node:http';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { curl } from '../helpers/curl.js';
import { startTurret, type TurretProc } from '../helpers/turret.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const rules = (withCa: boolean): RuleFile => ({
  agents: [{ name: 'a', token: { env: 'AGENT_TOKEN' } }],
  rules: [{ name: 'echo', methods: ['read', 'write'], hosts: ['echo.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['echo.turret.test'],
  testCa: withCa,
});

describe('upstream TLS verification', () => {
  let up: Upstream;
  let noCa: TurretProc;
  before(async () => {
    up = await startUpstream();
    noCa = await startTurret({ rules: { 'r.yaml': rules(false) }, env: { AGENT_TOKEN: 'fake-agent-token-1' } });
  });
  after(async () => {
    await noCa?.stop();
    await up?.close();
  });

  it('refuses an upstream whose certificate does not chain to the system roots (502 upstream_tls_failed)', async () => {
    const r = await curl([
      '-x',
      `http://127.0.0.1:${noCa.port}`,
      '--proxy-user',
      'a:fake-agent-token-1',
      '--cacert',
      path.join(noCa.caDir, 'ca.crt'),
      `https://echo.turret.test:${up.port}/`,
    ]);
    assert.equal(r.status, 502, r.raw);
    assert.equal(r.headers['x-turret-error'], 'upstream_tls_failed');
    assert.match(r.body, /network failure/);
    assert.equal(up.received.length, 0, 'no request was sent over the unverified connection');
  });
});

describe('streaming both ways', () => {
  let t: TurretProc;
  let up: Upstream;
  let release: () => void = () => {};
  const released = new Promise<void>((r) => (release = r));
  let uploadSeenBeforeEnd = false;

  before(async () => {
    up = await startUpstream({
      handler: (req, res) => {
        if (req.url === '/slow') {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.write(Buffer.alloc(64 * 1024, 'a'));
          // The rest only after the client has seen the first part: a buffering proxy would deadlock here.
          void released.then(() => res.end(Buffer.alloc(64 * 1024, 'b')));
          return;
        }
        res.writeHead(200);
        res.end('ok');
      },
    });
    t = await startTurret({ rules: { 'r.yaml': rules(true) }, env: { AGENT_TOKEN: 'fake-agent-token-2' } });
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  function tunnelAgent(): https.Agent {
    // A CONNECT tunnel through the proxy, then TLS with turret's CA (Node has no built-in proxy agent).
    const ca = readFileSync(path.join(t.caDir, 'ca.crt'));
    const agent = new https.Agent({ ca, keepAlive: false });
    (agent as unknown as { createConnection: unknown }).createConnection = (opts: { host: string; port: number }, cb: (e: Error | null, s?: unknown) => void) => {
      const req = http.request({
        host: '127.0.0.1',
        port: t.port,
        method: 'CONNECT',
        path: `${opts.host}:${opts.port}`,
        headers: { 'proxy-authorization': `Basic ${Buffer.from('a:fake-agent-token-2').toString('base64')}` },
      });
      req.on('connect', (res, socket) => {
        if (res.statusCode !== 200) return cb(new Error(`CONNECT ${res.statusCode}`));
        void import('node:tls').then((tls) => cb(null, tls.connect({ socket, servername: opts.host, ca })), cb);
      });
      req.on('error', cb);
      req.end();
    };
    return agent;
  }

  it('delivers the first part of a response before the upstream has sent the rest', async () => {
    const agent = tunnelAgent();
    const got = await new Promise<{ first: number; total: number }>((resolve, reject) => {
      https
        .get({ host: 'echo.turret.test', port: up.port, path: '/slow', agent }, (res) => {
          let total = 0;
          let first = 0;
          res.on('data', (c: Buffer) => {
            total += c.length;
            // The scrubber may hold back a small bounded window (a few KiB), never the whole body.
            if (!first && total >= 32 * 1024) {
              first = total;
              release();
            }
          });
          res.on('end', () => resolve({ first, total }));
          res.on('error', reject);
        })
        .on('error', reject);
    });
    assert.ok(got.first >= 32 * 1024 && got.first <= 64 * 1024, `most of the first 64 KiB arrived while the upstream was still waiting (${got.first})`);
    assert.equal(got.total, 128 * 1024);
  });

  it('streams a request body to the upstream before the client has finished sending it', async () => {
    let sawFirst: () => void = () => {};
    const firstChunk = new Promise<void>((r) => (sawFirst = r));
    const up2 = await startUpstream({
      handler: (_req, res, body) => {
        res.writeHead(200);
        res.end(String(body.length));
      },
    });
    // Watch the upstream's raw socket: the first bytes of the body arrive while the client still holds the rest.
    const agent = tunnelAgent();
    const result = new Promise<string>((resolve, reject) => {
      const req = https.request({ host: 'echo.turret.test', port: up2.port, path: '/upload', method: 'POST', agent, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        let s = '';
        res.on('data', (c: Buffer) => (s += c.toString()));
        res.on('end', () => resolve(s));
      });
      req.on('error', reject);
      req.write(Buffer.alloc(32 * 1024, 'x'));
      const poll = setInterval(() => {
        if (up2.connections > 0) {
          clearInterval(poll);
          uploadSeenBeforeEnd = true;
          sawFirst();
        }
      }, 10);
      void firstChunk.then(() => req.end(Buffer.alloc(32 * 1024, 'y')));
    });
    assert.equal(await result, String(64 * 1024));
    assert.ok(uploadSeenBeforeEnd, 'the upstream connection opened before the client finished the body');
    await up2.close();
  });
});
