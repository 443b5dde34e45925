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
import { handleRequest } from './pipeline.js';
import { sendErrorRaw } from './respond.js';
import type { Runtime } from './runtime.js';

export interface ProxyServer {
  server: http.Server;
  address(): AddressInfo;
  close(): Promise<void>;
}

function serverOptions(rt: Runtime): http.ServerOptions {
  return {
    maxHeaderSize: rt.limits.maxHeaderBytes,
    // Slow clients: the whole header block must arrive within headersTimeout.
    headersTimeout: 30_000,
    requestTimeout: 0, // long downloads are legitimate; idle sockets are cut by keepAliveTimeout/idle timeout
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
    void handleRequest(rt, req, res, tunnels.get(req.socket) ?? null);
  });
  inner.on('clientError', onClientError(rt));
  const server = http.createServer(serverOptions(rt));
  server.on('request', (req, res) => {
    void handleRequest(rt, req, res, null);
  });
  server.on('connect', (req, socket, head) => handleConnect(rt, inner, req, socket, head));
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
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 2_000).unref();
      });
      inner.close();
    },
  };
}
