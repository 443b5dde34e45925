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
import { readFileSync } from 'node:fs';
import { startTurret, type TurretProc } from '../helpers/turret.js';
import { startUpstream, UPSTREAM_CA_FILE, type Upstream } from '../helpers/upstream.js';

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
        'r.yaml': `
agents: [{ name: a, token: { env: AGENT_TOKEN } }]
rules:
  - name: echo
    methods: [read]
    hosts: ["echo.turret.test:*", "other.turret.test:*"]
    unsafe_addresses: [127.0.0.1/32]
settings:
  upstream_ca_file: ${JSON.stringify(UPSTREAM_CA_FILE)}
  dns_hosts: { echo.turret.test: [127.0.0.1], other.turret.test: [127.0.0.1] }
`,
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
