/**
 * Inside an intercepted tunnel: the TLS SNI must match the CONNECT host (else every request gets
 * 421), and CONNECT inside the tunnel is refused with 403 — a tunnel in a tunnel would carry
 * bytes nobody inspects. Raw sockets, so the exact bytes on the wire are what is tested.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { curl } from '../helpers/curl.js';
import { runCli, startTurret, type TurretProc } from '../helpers/turret.js';
import { startUpstream, UPSTREAM_CA_FILE, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK } from '../helpers/rules.js';

const AUTH = `Basic ${Buffer.from('a:fake-agent-token-3').toString('base64')}`;

async function openTunnel(t: TurretProc, authority: string, servername: string): Promise<tls.TLSSocket> {
  const raw = net.connect(t.port, '127.0.0.1');
  await new Promise<void>((r, j) => raw.once('connect', () => r()).once('error', j));
  raw.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: ${AUTH}\r\n\r\n`);
  const head = await new Promise<string>((r) => {
    let s = '';
    const on = (c: Buffer): void => {
      s += c.toString('latin1');
      if (s.includes('\r\n\r\n')) {
        raw.off('data', on);
        r(s);
      }
    };
    raw.on('data', on);
  });
  assert.match(head, /^HTTP\/1\.1 200/);
  const ca = readFileSync(path.join(t.caDir, 'ca.crt'));
  // The leaf is for the CONNECT host; verify against it even when we send another SNI.
  const s = tls.connect({ socket: raw, servername, ca, checkServerIdentity: () => undefined });
  await new Promise<void>((r, j) => s.once('secureConnect', () => r()).once('error', j));
  return s;
}

function exchange(s: tls.TLSSocket, request: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString('latin1')));
    s.on('close', () => resolve(out));
    s.on('end', () => resolve(out));
    setTimeout(() => resolve(out), 3000).unref();
    s.write(request);
  });
}

describe('inside an intercepted tunnel', () => {
  let t: TurretProc;
  let up: Upstream;
  before(async () => {
    up = await startUpstream();
    t = await startTurret({
      env: { AGENT_TOKEN: 'fake-agent-token-3' },
      rules: {
        'r.yaml': {
          agents: [{ name: 'a', token: { env: 'AGENT_TOKEN' } }],
          rules: [{ name: 'echo', methods: ['read'], hosts: ['echo.turret.test:*', 'other.turret.test:*'], unsafe_addresses: LOOPBACK }],
          local: ['echo.turret.test', 'other.turret.test'],
        },
      },
    });
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  it('serves a request whose SNI and Host match the CONNECT host', async () => {
    const s = await openTunnel(t, `echo.turret.test:${up.port}`, 'echo.turret.test');
    const out = await exchange(s, `GET /ok HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\nConnection: close\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 200/);
  });

  it('answers 421 to every request when the SNI names another host, and sends nothing upstream', async () => {
    const before = up.received.length;
    const s = await openTunnel(t, `echo.turret.test:${up.port}`, 'other.turret.test');
    const out = await exchange(s, `GET /x HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\nConnection: close\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 421/);
    assert.match(out, /x-turret-error: misdirected_request/i);
    assert.equal(up.received.length, before);
  });

  it('refuses CONNECT inside the tunnel with 403 method_forbidden', async () => {
    const s = await openTunnel(t, `echo.turret.test:${up.port}`, 'echo.turret.test');
    const out = await exchange(s, `CONNECT other.turret.test:${up.port} HTTP/1.1\r\nHost: other.turret.test:${up.port}\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 403/);
    assert.match(out, /x-turret-error: method_forbidden/i);
  });
});

describe('passthrough rules: opaque tunnels for clients that pin certificates', () => {
  let t: TurretProc;
  let up: Upstream;
  const curlVia = (url: string, cacert: string) => curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', 'a:fake-agent-token-4', '--cacert', cacert, url]);
  before(async () => {
    up = await startUpstream();
    t = await startTurret({
      env: { AGENT_TOKEN: 'fake-agent-token-4' },
      rules: {
        'r.yaml': {
          agents: [{ name: 'a', token: { env: 'AGENT_TOKEN' } }],
          rules: [
            { name: 'pinned', methods: ['any'], hosts: ['pinned.turret.test:*', 'guarded.turret.test:*'], passthrough: true, unsafe_addresses: LOOPBACK },
            { name: 'no-admin', action: 'deny', methods: ['any'], hosts: ['guarded.turret.test:*'], paths: ['/admin/**'] },
          ],
          local: ['pinned.turret.test', 'guarded.turret.test'],
          testCa: false,
        },
      },
    });
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  it('relays the upstream’s own TLS end to end (the client verifies the upstream, not Turret) and audits the bytes', async () => {
    const r = await curlVia(`https://pinned.turret.test:${up.port}/pinned`, UPSTREAM_CA_FILE);
    assert.equal(r.status, 200, r.raw + r.stderr);
    assert.equal(up.received.at(-1)?.url, '/pinned');
    let close: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && !close; i++) {
      close = t.audit().find((x) => x.event === 'tunnel_close' && x.host === 'pinned.turret.test');
      if (!close) await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(close && Number(close.bytes_in) > 0 && Number(close.bytes_out) > 0, JSON.stringify(close));
    const open = t.audit().find((x) => x.event === 'tunnel_open' && x.host === 'pinned.turret.test');
    assert.match(String(open?.reason), /passthrough/);
  });

  it('intercepts instead when a deny rule touches the host (the deny can only be enforced by looking)', async () => {
    const pinnedFails = await curlVia(`https://guarded.turret.test:${up.port}/x`, UPSTREAM_CA_FILE);
    assert.notEqual(pinnedFails.code, 0, 'a client pinning the upstream CA sees Turret’s leaf instead');
    const viaTurret = await curlVia(`https://guarded.turret.test:${up.port}/admin/x`, path.join(t.caDir, 'ca.crt'));
    assert.equal(viaTurret.status, 403);
  });

  it('refuses passthrough combined with conditions it cannot enforce (load error with file:line:col)', async () => {
    const dir = mkdtempSync(path.join(t.dir, 'bad-'));
    writeFileSync(path.join(dir, 'bad.yaml'), 'rules:\n  - name: p\n    methods: [read]\n    hosts: [x.test]\n    passthrough: true\n');
    const r = await runCli(['rules', 'check', '--rules', dir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad\.yaml:5:18: rules\[0\]\.passthrough: a passthrough tunnel carries every method unseen; write methods: \[any\]/);
  });
});
