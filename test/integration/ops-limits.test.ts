/**
 * Resource limits on a real turret process with small limits (--limit), each answered with a
 * clear error or a bounded close: header size (431), tunnels per agent (429), total request time
 * (504), upstream connect time (504), and slow clients trickling a byte at a time into the proxy
 * port and into an intercepted tunnel (headers and body). Every wait is bounded.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { curl } from '../helpers/curl.js';
import { agentToken, basic, closedWithin, rawConnect } from '../helpers/ops.js';
import { readResponse } from '../helpers/raw-proxy.js';
import { startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

function rules(): RuleFile {
  return {
    agents: ['agent-a', 'agent-b'],
    rules: [{ name: 'echo', methods: ['read', 'POST'], hosts: ['echo.turret.test:*', 'hang.turret.test:*'], unsafe_addresses: LOOPBACK }],
    local: ['echo.turret.test', 'hang.turret.test'],
  };
}

const LIMITS = ['max_header_bytes=4k', 'max_tunnels_per_agent=2', 'client_headers_timeout=1s', 'client_request_timeout=2s', 'request_timeout=1500ms', 'connect_timeout=500ms'];

/** Writes `text` one byte every `everyMs` until the socket closes. */
function trickle(socket: net.Socket | tls.TLSSocket, text: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++] ?? '');
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

describe('limits', () => {
  let t: TurretProc;
  let up: Upstream;
  let hang: net.Server;
  let hangPort: number;
  let caFile: string;
  let tokenA: string;
  let tokenB: string;
  const open: net.Socket[] = [];

  const px = (agent = 'agent-a'): string[] => ['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `${agent}:${agent === 'agent-a' ? tokenA : tokenB}`, '--cacert', caFile];

  /** A TLS session inside a CONNECT tunnel to echo.turret.test. */
  const tunnelTls = async (): Promise<tls.TLSSocket> => {
    const c = await rawConnect(t.port, `echo.turret.test:${up.port}`, basic('agent-a', tokenA));
    assert.equal(c.status, 200);
    open.push(c.socket);
    const s = tls.connect({ socket: c.socket, servername: 'echo.turret.test', ca: readFileSync(caFile) });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    return s;
  };

  before(async () => {
    up = await startUpstream({
      handler: (req, res, body) => {
        if (req.url === '/slow') {
          setTimeout(() => res.writeHead(200).end('late'), 5_000).unref();
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`ok ${body.length}`);
      },
    });
    // Accepts TCP and never answers: a TLS handshake toward it can only time out. It reads (and
    // drops) what arrives, so it sees the close and its own close() can finish.
    hang = net.createServer((s) => s.on('error', () => {}).resume());
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', () => r()));
    hangPort = (hang.address() as AddressInfo).port;
    t = await startTurret({ rules: { 'l.yaml': rules() }, args: LIMITS.flatMap((l) => ['--limit', l]) });
    caFile = path.join(t.caDir, 'ca.crt');
    tokenA = await agentToken(t, 'agent-a');
    tokenB = await agentToken(t, 'agent-b');
  });
  after(async () => {
    for (const s of open) s.destroy();
    await t?.stop();
    await up?.close();
    await new Promise<void>((r) => hang.close(() => r()));
  });

  it('reports the limits in the start-up summary', () => {
    assert.match(t.stderr(), /"limits":\{[^}]*"maxHeaderBytes":4096[^}]*"maxTunnelsPerAgent":2/);
  });

  it('answers oversized request headers with 431 headers_too_large, on the proxy port and inside a tunnel', async () => {
    const big = `x-big: ${'a'.repeat(5000)}`;
    const r = await curl([...px(), '-H', big, `http://echo.turret.test:${up.port}/`]);
    assert.equal(r.status, 431, r.raw);
    assert.equal(r.headers['x-turret-error'], 'headers_too_large');
    const s = await tunnelTls();
    s.write(`GET / HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\n${big}\r\n\r\n`);
    const inner = await readResponse(s);
    assert.equal(inner.status, 431);
    assert.equal(inner.headers['x-turret-error'], 'headers_too_large');
    s.destroy();
    // Just under the limit passes.
    const ok = await curl([...px(), '-H', `x-big: ${'a'.repeat(3000)}`, `https://echo.turret.test:${up.port}/`]);
    assert.equal(ok.status, 200, ok.raw + ok.stderr);
  });

  it('refuses a third concurrent tunnel of one agent with 429 too_many_tunnels, not another agent’s', async () => {
    const a1 = await rawConnect(t.port, `echo.turret.test:${up.port}`, basic('agent-a', tokenA));
    const a2 = await rawConnect(t.port, `echo.turret.test:${up.port}`, basic('agent-a', tokenA));
    open.push(a1.socket, a2.socket);
    assert.equal(a1.status, 200);
    assert.equal(a2.status, 200);
    const a3 = await rawConnect(t.port, `echo.turret.test:${up.port}`, basic('agent-a', tokenA));
    open.push(a3.socket);
    assert.equal(a3.status, 429);
    assert.equal(a3.headers['x-turret-error'], 'too_many_tunnels');
    assert.match(a3.body, /max_tunnels_per_agent=2/);
    const b = await rawConnect(t.port, `echo.turret.test:${up.port}`, basic('agent-b', tokenB));
    open.push(b.socket);
    assert.equal(b.status, 200, 'the limit is per agent');
    assert.ok(await waitForAudit(t, (x) => x.event === 'tunnel_open' && x.code === 'too_many_tunnels' && x.agent === 'agent-a'));
    // Closing one gives its slot back (released on the close that writes its tunnel_close).
    const closed = (s: net.Socket): Promise<unknown> => {
      const client = `127.0.0.1:${s.localPort}`;
      return waitForAudit(t, (x) => x.event === 'tunnel_close' && x.client === client).then((rec) => assert.ok(rec, `tunnel_close of ${client}`));
    };
    const a1closed = closed(a1.socket);
    a1.socket.destroy();
    await a1closed;
    const a4 = await rawConnect(t.port, `echo.turret.test:${up.port}`, basic('agent-a', tokenA));
    open.push(a4.socket);
    assert.equal(a4.status, 200);
    const rest = [a2.socket, a4.socket, b.socket].map(closed);
    for (const s of [a2.socket, a3.socket, a4.socket, b.socket]) s.destroy();
    await Promise.all(rest);
  });

  it('ends an exchange that outlives request_timeout with 504 upstream_timeout', async () => {
    const started = Date.now();
    const r = await curl([...px(), `https://echo.turret.test:${up.port}/slow`]);
    const ms = Date.now() - started;
    assert.equal(r.status, 504, r.raw + r.stderr);
    assert.equal(r.headers['x-turret-error'], 'upstream_timeout');
    assert.match(r.body, /request_timeout/);
    assert.ok(ms < 4_000, `answered after ${ms} ms, before the upstream's 5 s`);
  });

  it('arms request_timeout again for a request that reuses a tunnelled keep-alive connection: the second, slow one gets 504 upstream_timeout, one record each', async () => {
    // The deadline is a coarse timeout (coarse-timers.ts), armed per request and cleared when its
    // response closes: the first exchange's must not fire, the second's must.
    const s = await tunnelTls();
    s.on('error', () => {});
    let data = '';
    const until = (re: RegExp): Promise<void> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (re.test(data)) {
            s.off('data', onData).off('close', onClose);
            resolve();
          }
        };
        const onData = (c: Buffer): void => {
          data += c.toString('latin1');
          check();
        };
        const onClose = (): void => reject(new Error(`closed before ${String(re)}: ${data}`));
        s.on('data', onData).once('close', onClose);
        check();
      });
    s.write(`GET /reuse-first HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\n\r\n`);
    await until(/\r\nok 0\r\n0\r\n\r\n$/);
    s.write(`GET /slow HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\nX-Reuse: second\r\n\r\n`);
    await until(/HTTP\/1\.1 504 [\s\S]*request_timeout/);
    assert.match(data, /^HTTP\/1\.1 200 [\s\S]*\r\nok 0\r\n0\r\n\r\nHTTP\/1\.1 504 /);
    s.destroy();
    const first = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/reuse-first');
    assert.equal(first?.status, 200, JSON.stringify(first));
    const tunnelId = first?.tunnel_id;
    const second = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/slow' && x.tunnel_id === tunnelId);
    assert.deepEqual([second?.status, second?.code], [504, 'upstream_timeout'], JSON.stringify(second));
    assert.equal(t.audit().filter((x) => x.event === 'request' && x.tunnel_id === tunnelId).length, 2, 'one record per exchange');
  });

  it('gives up an upstream TLS handshake after connect_timeout with 504', async () => {
    const started = Date.now();
    const r = await curl([...px(), `https://hang.turret.test:${hangPort}/`]);
    assert.equal(r.status, 504, r.raw + r.stderr);
    assert.equal(r.headers['x-turret-error'], 'upstream_timeout');
    assert.ok(Date.now() - started < 1_400, 'connect_timeout (500 ms) answered before request_timeout (1.5 s)');
  });

  it('closes a client that trickles its request head a byte at a time (proxy port): 408 within the bound', async () => {
    const s = net.connect(t.port, '127.0.0.1');
    s.on('error', () => {});
    trickle(s, `GET http://echo.turret.test:${up.port}/ HTTP/1.1\r\nHost: echo.turret.test\r\nX-Pad: ${'p'.repeat(200)}\r\n\r\n`, 100);
    await new Promise((resolve) => s.once('connect', resolve));
    const client = `127.0.0.1:${s.localPort ?? 0}`;
    const c = await closedWithin(s, 5_000);
    assert.match(c.data, /^HTTP\/1\.1 408 /);
    assert.ok(c.ms < 3_500, `closed after ${c.ms} ms (client_headers_timeout=1s)`);
    // Its one record names the cause and the client (it used to carry no client address).
    const rec = await waitForAudit(t, (r) => r.code === 'client_timeout' && r.client === client);
    assert.ok(rec, `no client_timeout record for ${client}:\n${t.auditText().slice(-2000)}`);
    assert.equal(t.audit().filter((r) => r.client === client).length, 1, 'exactly one record for the trickling client');
  });

  it('closes a client that trickles its request head inside a tunnel', async () => {
    const s = await tunnelTls();
    s.on('error', () => {});
    trickle(s, `GET / HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\nX-Pad: ${'p'.repeat(200)}\r\n\r\n`, 100);
    const c = await closedWithin(s, 5_000);
    assert.match(c.data, /^HTTP\/1\.1 408 /);
    assert.ok(c.ms < 3_500, `closed after ${c.ms} ms`);
  });

  it('closes a tunnelled keep-alive connection left idle after a complete exchange: its answer, then 408, one record each', async () => {
    // The slow-client guard restarts the head timeout when a response finishes (limits.ts, the
    // listener each request adds): without that the connection would never be closed.
    const s = await tunnelTls();
    s.on('error', () => {});
    s.write(`GET /idle-after HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\n\r\n`);
    const c = await closedWithin(s, 8_000);
    assert.match(c.data, /^HTTP\/1\.1 200 [\s\S]*\r\nok 0\r\n[\s\S]*HTTP\/1\.1 408 /);
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/idle-after');
    assert.equal(rec?.status, 200, JSON.stringify(rec));
    assert.equal(t.audit().filter((x) => x.event === 'request' && x.path === '/idle-after').length, 1, 'exactly one record for the request');
    const tunnelId = rec?.tunnel_id;
    assert.ok(tunnelId, JSON.stringify(rec));
    const idle = await waitForAudit(t, (x) => x.code === 'client_timeout' && x.tunnel_id === tunnelId);
    assert.ok(idle, `no client_timeout record for tunnel ${String(tunnelId)}:\n${t.auditText().slice(-2000)}`);
    assert.equal(t.audit().filter((x) => x.code === 'client_timeout' && x.tunnel_id === tunnelId).length, 1, 'exactly one client_timeout record');
  });

  it('cuts a request body sent a byte at a time inside a tunnel (client_request_timeout) and audits it', async () => {
    const s = await tunnelTls();
    s.on('error', () => {});
    s.write(`POST /upload HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\nProxy-Connection: close\r\nContent-Length: 1000\r\n\r\n`);
    trickle(s, 'b'.repeat(1000), 100);
    const c = await closedWithin(s, 6_000);
    assert.ok(c.ms < 4_500, `closed after ${c.ms} ms (client_request_timeout=2s)`);
    assert.ok(!up.received.some((r) => r.url === '/upload' && r.body.length === 1000), 'the upstream never got a whole body');
    // The cause is the client's slowness, not an upstream outage (it was once upstream_connect_failed).
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/upload');
    assert.equal(rec?.code, 'client_timeout', JSON.stringify(rec));
    assert.equal(t.audit().filter((x) => x.event === 'request' && x.path === '/upload').length, 1, 'exactly one record for the upload');
  });

  it('closes a client that connects and sends nothing', async () => {
    const s = net.connect(t.port, '127.0.0.1');
    s.on('error', () => {});
    const c = await closedWithin(s, 5_000);
    assert.ok(c.ms < 3_500, `closed after ${c.ms} ms`);
  });
});
