/**
 * The proxy listener: the only module that owns client sockets. One outer HTTP server (node:http)
 * takes absolute-form requests and CONNECT; one inner server, Turret's own HTTP/1.1 on llhttp
 * (h1-server.ts, never listening), takes the decrypted connections of intercepted tunnels. Both feed the pipeline (connection.ts serveRequest);
 * per-connection state lives in one Connections object shared by them.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TurretError } from '../../core/errors.js';
import { handleConnect } from './connect.js';
import { connectionCap, guardAccepts, openFilesLimit } from './accept.js';
import { drain, type DrainResult } from './drain.js';
import { clientClosedError } from '../ending.js';
import { clientTimeoutError, guardSlowClients, nodeServerTimeouts } from '../limits.js';
import { sendError, sendErrorRaw } from '../stages/respond.js';
import { handleBridge, isBridgeConnect } from './bridge.js';
import { startTransparent, transparentHandler, type TransparentListener } from './transparent.js';
import { MALFORMED_REASON } from '../stages/validate.js';
import { afterEarlier, Connections, serveRequest } from './connection.js';
import { handleUpgrade } from './websocket.js';
import { H1Server } from './h1-server.js';
import type { H1Request } from './h1-request.js';
import type { Runtime } from '../runtime.js';
import type { ClientRequest, ClientResponse, Tunnel } from '../stages/exchange.js';
import { clientOf, recordRefusal } from '../record.js';

export interface ProxyServer {
  server: http.Server;
  address(): AddressInfo;
  /** The transparent listener's address (transparent.ts), or null when it is off. */
  transparentAddress(): AddressInfo | null;
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
    // Node's own "no Host" answer is a bare 400 with no X-Turret-Error and no audit record;
    // validate.ts refuses it instead (and a duplicate Host, which Node lets through).
    requireHostHeader: false,
  };
}

function onClientError(rt: Runtime, conns: Connections) {
  return (err: Error & { code?: string }, socket: Duplex): void => {
    if (!socket.writable || (socket as Socket).destroyed) {
      socket.destroy();
      return;
    }
    const conn = conns.of(socket);
    const tunnel = conn.tunnel;
    const facts = { agent: tunnel?.agent ?? null, client: tunnel?.client ?? clientOf(socket as Socket), tunnelId: tunnel?.id };
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && !(socket as { _httpMessage?: unknown })._httpMessage) {
      // A slow client with no request under way: say why, and leave a record of it.
      const e = clientTimeoutError(rt.limits);
      recordRefusal(rt, e, facts);
      sendErrorRaw(socket, e, { scrub: (s) => s });
      return;
    }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // Node's requestTimeout with a request under way (a slow body): its record says so (ending.ts).
      const e = new TurretError('client_timeout', 'the client did not send the whole request in time (client_request_timeout)');
      for (const { req, x } of conn.open) if (!req.complete) x?.ending?.end(e);
      socket.destroy();
      return;
    }
    if (err.code === 'HPE_INVALID_EOF_STATE') {
      // The client closed its sending side in the middle of a message: not malformed input, a
      // client that went away. An exchange under way ends with client_closed (its record is
      // finish.ts's); a head cut short leaves a record here.
      for (const { req, res, x } of conn.open) x?.ending?.end(clientClosedError(req, res));
      if (conn.open.size === 0) {
        recordRefusal(rt, new TurretError('client_closed', 'the client closed the connection before sending a whole request head'), facts);
      }
      socket.destroy();
      return;
    }
    if (err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    if (conn.answered) return;
    conn.answered = true;
    const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'bad_request';
    const reason = code === 'headers_too_large' ? `request headers exceed ${rt.limits.maxHeaderBytes} bytes` : MALFORMED_REASON;
    const open = [...conn.open];
    const last = open.at(-1);
    if (last) {
      // Exchanges are under way on this connection: a raw 400 written now would be read as the
      // answer to one of them. A request whose body the parser refused is answered 400 through its
      // own response (and never forwarded: pipeline.ts checks the mark); complete requests before
      // it finish normally; then the connection closes.
      let unfinished = 0;
      for (const { req, res, x } of open) {
        if (req.complete) continue;
        unfinished++;
        if (x) x.malformed = true;
        if (!res.headersSent) sendError(res, new TurretError('bad_request', MALFORMED_REASON), { method: req.method, scrub: (s) => s });
        // Stop the body if it already streams upstream: the upstream sees an aborted message.
        if (res.writableFinished) req.destroy();
        else res.once('finish', () => req.destroy());
      }
      if (!last.res.headersSent) last.res.shouldKeepAlive = false;
      if (last.res.writableFinished) socket.end();
      else last.res.once('finish', () => socket.end()).once('close', () => socket.destroy());
      if (unfinished > 0) return; // finish.ts audits those exchanges
    }
    const refusal = new TurretError(code, reason);
    recordRefusal(rt, refusal, facts);
    if (last) return;
    // The last response said Connection: close: what follows it is never read, nor answered.
    if (conn.closing) socket.end();
    else sendErrorRaw(socket, refusal, { scrub: (s) => s });
  };
}

/**
 * `Expect` other than 100-continue on HTTP/1.1: the server layer answers it before any 'request'
 * (node:http's and h1-server.ts's 'checkExpectation'), so the pipeline never sees it. Answered 417
 * with Turret's refusal and recorded here: without this it was a bare 417 with no audit record.
 */
function onExpectation(rt: Runtime, conns: Connections) {
  return (req: ClientRequest, res: ClientResponse): void => {
    const tunnel = conns.tunnelOf(req.socket);
    const err = new TurretError('expectation_unsupported', 'the request has an Expect field other than 100-continue; Turret meets no other expectation');
    recordRefusal(rt, err, {
      agent: tunnel?.agent ?? null,
      client: tunnel?.client ?? clientOf(req.socket),
      method: req.method,
      host: tunnel?.host,
      port: tunnel?.port,
      tunnelId: tunnel?.id,
    });
    // Tracked, so a request pipelined behind it waits its turn and is dropped after its close.
    conns.of(req.socket).track(req, res, null);
    sendError(res, err, { method: req.method, scrub: (s) => s });
  };
}

export async function startProxyServer(rt: Runtime, listen: { host: string; port: number }, transparentListen: { host: string; port: number } | null = null): Promise<ProxyServer> {
  const conns = new Connections();
  // Node's own header and request timeouts never run for a server that does not listen: the
  // slow-client guard (limits.ts) applies them; the keep-alive wait is the outer server's.
  const inner = new H1Server({ maxHeaderSize: rt.limits.maxHeaderBytes, keepAliveTimeout: 30_000 });
  inner.on('request', (req: H1Request, res: ClientResponse) => serveRequest(rt, conns.of(req.socket), req, res));
  const innerGuard = guardSlowClients(
    inner,
    rt.limits,
    (req, cause) => conns.of(req.socket).end(req, cause),
    (socket) => {
      const tunnel = conns.tunnelOf(socket);
      recordRefusal(rt, clientTimeoutError(rt.limits), { agent: tunnel?.agent ?? null, client: tunnel?.client, tunnelId: tunnel?.id });
    },
  );
  inner.on('clientError', onClientError(rt, conns));
  inner.on('checkExpectation', onExpectation(rt, conns));
  // CONNECT inside an intercepted tunnel would open a tunnel nobody inspects: always refused.
  inner.on('connect', (req: H1Request, socket: Duplex) => {
    const tunnel = conns.tunnelOf(req.socket);
    const err = new TurretError('method_forbidden', 'CONNECT inside an intercepted tunnel is never allowed');
    recordRefusal(rt, err, { agent: tunnel?.agent ?? null, client: tunnel?.client, method: 'CONNECT', host: tunnel?.host, port: tunnel?.port, tunnelId: tunnel?.id });
    afterEarlier(rt, conns.of(req.socket), socket, () => socket.writable && sendErrorRaw(socket, err, { method: 'CONNECT', target: req.url ?? null, scrub: (t) => t }));
  });
  const server = http.createServer(serverOptions(rt));
  server.on('request', (req, res) => serveRequest(rt, conns.of(req.socket), req, res));
  // A decrypted tunnel becomes a connection of the inner server, with its tunnel attached.
  const intercepted = (tlsSocket: Duplex, tunnel: Tunnel, outer: Duplex): void => {
    const conn = conns.of(tlsSocket);
    conn.tunnel = tunnel;
    conns.of(outer).inside = { conn, socket: tlsSocket };
    inner.emit('connection', tlsSocket);
  };
  const sockets = new Set<Socket>();
  // Redirected plain HTTP (transparent listener, run bridge) gets a server with the same options; TLS goes to `inner`.
  const plain = http.createServer(serverOptions(rt));
  plain.on('clientError', onClientError(rt, conns));
  plain.on('checkExpectation', onExpectation(rt, conns));
  const web = transparentHandler(rt, { intercepted, plain, conns, sockets });
  server.on('connect', (req, socket, head) =>
    afterEarlier(rt, conns.of(req.socket), socket, () => (isBridgeConnect(req) ? handleBridge(rt, web, req, socket, head) : handleConnect(rt, intercepted, req, socket, head))),
  );
  // WebSocket upgrades, plain and inside intercepted tunnels (websocket.ts).
  server.on('upgrade', (req, socket, head) => void handleUpgrade(rt, req, socket, head, null, conns.of(req.socket)));
  inner.on('upgrade', (req: H1Request, socket: Duplex, head: Buffer) => void handleUpgrade(rt, req, socket, head, conns.tunnelOf(req.socket), conns.of(req.socket)));
  server.on('clientError', onClientError(rt, conns));
  server.on('checkExpectation', onExpectation(rt, conns));
  server.on('connection', (s: Socket) => {
    conns.closeWhenIdle(rt, s);
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
  // Client listeners share the open-files limit (accept.ts); the admin listener is not capped.
  const cap = connectionCap(rt.limits.maxClientConnections, transparentListen ? 2 : 1);
  guardAccepts(rt, server, 'proxy', cap);
  rt.log.info('client connections capped', { max_client_connections: cap ?? 'none', open_files_limit: openFilesLimit() ?? 'unknown' });
  let transparent: TransparentListener | null = null;
  if (transparentListen) {
    try {
      transparent = await startTransparent(rt, { listen: transparentListen, intercepted, plain, conns, sockets }, web, cap);
    } catch (e) {
      server.close();
      throw e;
    }
  }
  return {
    server,
    address: () => server.address() as AddressInfo,
    transparentAddress: () => transparent?.address() ?? null,
    close: (graceMs = 2_000) => {
      transparent?.close();
      web.stop();
      // At the deadline, what still runs is cut with its own cause before its sockets close.
      const onDeadline = (): void =>
        void rt.live.cutAll(new TurretError('drain_deadline', `the proxy is shutting down and the drain deadline (${Math.round(graceMs / 100) / 10}s) passed`));
      // Every response not yet begun, on a client's connection or in the tunnel inside it.
      const unanswered = function* (): Iterable<ClientResponse> {
        for (const s of sockets) {
          const conn = conns.of(s);
          for (const o of conn.open) yield o.res;
          if (conn.inside) for (const o of conn.inside.conn.open) yield o.res;
        }
      };
      return drain({ outer: server, inner, sockets, innerGuard, onDeadline, unanswered }, graceMs);
    },
  };
}
