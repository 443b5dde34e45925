/**
 * The proxy listener: the only module that owns client sockets. One outer HTTP server takes
 * absolute-form requests and CONNECT; one inner HTTP server (never listening) takes the
 * decrypted connections of intercepted tunnels. Both feed pipeline.handleRequest.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TurretError } from '../core/errors.js';
import { handleConnect, tunnels } from './connect.js';
import { drain, type DrainResult } from './drain.js';
import { armDeadline, guardSlowClients, nodeServerTimeouts, REQUEST_TIMEOUT_RESPONSE } from './limits.js';
import { handleRequest } from './pipeline.js';
import { sendErrorRaw } from './respond.js';
import { handleUpgrade } from './websocket.js';
import type { Runtime } from './runtime.js';

export interface ProxyServer {
  server: http.Server;
  address(): AddressInfo;
  /** Stop accepting; running requests and tunnels get `graceMs` to finish (drain.ts). */
  close(graceMs?: number): Promise<DrainResult>;
}

function serverOptions(rt: Runtime): http.ServerOptions {
  return {
    maxHeaderSize: rt.limits.maxHeaderBytes,
    // Slow clients: the head within client_headers_timeout, the whole request (not the response:
    // long downloads are legitimate) within client_request_timeout. Inner server: limits.ts.
    ...nodeServerTimeouts(rt.limits),
    keepAliveTimeout: 30_000,
    // Reject requests whose framing is ambiguous rather than guess (llhttp strict mode is Node's default).
    insecureHTTPParser: false,
    joinDuplicateHeaders: false,
  };
}

function onClientError(rt: Runtime) {
  return (err: Error & { code?: string }, socket: Duplex): void => {
    if (!socket.writable || (socket as Socket).destroyed) {
      socket.destroy();
      return;
    }
    const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'bad_request';
    const reason = code === 'headers_too_large' ? `request headers exceed ${rt.limits.maxHeaderBytes} bytes` : 'the request is not valid HTTP/1.1';
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && !(socket as { _httpMessage?: unknown })._httpMessage) {
      socket.end(REQUEST_TIMEOUT_RESPONSE); // a slow client with no request under way: say why
      return;
    }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    rt.audit.write({ time: new Date().toISOString(), event: 'request', outcome: 'denied', agent: tunnels.get(socket)?.agent ?? null, code, reason, status: code === 'headers_too_large' ? 431 : 400 });
    sendErrorRaw(socket, new TurretError(code, reason), { scrub: (s) => s });
  };
}

export async function startProxyServer(rt: Runtime, listen: { host: string; port: number }): Promise<ProxyServer> {
  const inner = http.createServer(serverOptions(rt));
  inner.on('request', (req, res) => {
    armDeadline(rt.limits, req, res);
    void handleRequest(rt, req, res, tunnels.get(req.socket) ?? null);
  });
  const innerGuard = guardSlowClients(inner, rt.limits);
  inner.on('clientError', onClientError(rt));
  // CONNECT inside an intercepted tunnel would open a tunnel nobody inspects: always refused.
  inner.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
    const tunnel = tunnels.get(req.socket);
    const err = new TurretError('method_forbidden', 'CONNECT inside an intercepted tunnel is never allowed');
    rt.audit.write({ time: new Date().toISOString(), event: 'request', outcome: 'denied', agent: tunnel?.agent ?? null, method: 'CONNECT', host: tunnel?.host, port: tunnel?.port, code: err.code, status: err.status, reason: err.reason, tunnel_id: tunnel?.id });
    rt.metrics?.requests.inc({ agent: tunnel?.agent ?? 'unknown', decision: 'denied', code: err.code });
    sendErrorRaw(socket, err, { method: 'CONNECT', target: req.url ?? null, scrub: (t) => t });
  });
  const server = http.createServer(serverOptions(rt));
  server.on('request', (req, res) => {
    armDeadline(rt.limits, req, res);
    void handleRequest(rt, req, res, null);
  });
  server.on('connect', (req, socket, head) => handleConnect(rt, inner, req, socket, head));
  // WebSocket upgrades, plain and inside intercepted tunnels (websocket.ts).
  server.on('upgrade', (req, socket, head) => void handleUpgrade(rt, req, socket, head, null));
  inner.on('upgrade', (req, socket, head) => void handleUpgrade(rt, req, socket, head, tunnels.get(req.socket) ?? null));
  server.on('clientError', onClientError(rt));
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    s.setTimeout(rt.limits.idleTimeoutMs, () => s.destroy());
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  rt.selfAddresses.add(addr.address);
  return {
    server,
    address: () => server.address() as AddressInfo,
    close: (graceMs = 2_000) => drain({ outer: server, inner, sockets, innerGuard }, graceMs),
  };
}
