/**
 * Transparent mode, plain HTTP (connections redirected from port 80; transparent.ts tells them
 * from TLS by the first byte). Each origin-form request is rewritten to the absolute form a
 * proxy client would have sent and then runs the same pipeline as the proxy port: the Host
 * header is the destination, the source address the agent.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { TurretError, asTurretError } from '../../core/errors.js';
import { formatAuthority, parseAuthority } from '../../net/host.js';
import { sourceTableFor } from '../../net/sources.js';
import { guardSlowClients } from '../limits.js';
import { sendError, sendErrorRaw } from '../stages/respond.js';
import type { Runtime } from '../runtime.js';
import { boundAgent } from '../bound.js';
import { clientOf, recordRefusal } from '../record.js';
import { afterEarlier, serveRequest, type Connections } from './connection.js';
import { handleUpgrade } from './websocket.js';

const HTTP_PORT = 80;

/** Redirected plain HTTP: origin-form requests become the absolute form, then the pipeline. */
export function servePlain(rt: Runtime, plain: http.Server, conns: Connections): ReturnType<typeof guardSlowClients> {
  const guard = guardSlowClients(plain, rt.limits, (req, cause) => conns.of(req.socket).end(req, cause));
  plain.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const conn = conns.of(req.socket);
    try {
      toProxyForm(req);
    } catch (e) {
      conn.track(req, res, null); // so a body the parser refuses later is answered like on the proxy port
      refuseRequest(rt, req, asTurretError(e), (err) =>
        sendError(res, err, { method: req.method ?? null, target: null, scrub: (s) => rt.state.scrubbers.get().scrubString(s).text }),
      );
      return;
    }
    serveRequest(rt, conn, req, res);
  });
  plain.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      toProxyForm(req);
    } catch (e) {
      refuseRequest(rt, req, asTurretError(e), (err) =>
        afterEarlier(
          rt,
          conns.of(req.socket),
          socket,
          () => socket.writable && sendErrorRaw(socket, err, { method: req.method ?? null, target: null, scrub: (s) => rt.state.scrubbers.get().scrubString(s).text }),
        ),
      );
      return;
    }
    void handleUpgrade(rt, req, socket, head, null, conns.of(req.socket));
  });
  plain.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
    const err = new TurretError('method_forbidden', 'CONNECT is not accepted on the transparent listener; use the proxy port');
    refuseRequest(rt, req, err, (e) =>
      afterEarlier(rt, conns.of(req.socket), socket, () => socket.writable && sendErrorRaw(socket, e, { method: 'CONNECT', target: null, scrub: (s) => s })),
    );
  });
  return guard;
}

function refuseRequest(rt: Runtime, req: http.IncomingMessage, err: TurretError, send: (err: TurretError) => void): void {
  const agent = boundAgent(req.socket) ?? sourceTableFor(rt.state.policy.agents).lookup(req.socket.remoteAddress)?.agent ?? null;
  recordRefusal(rt, err, { agent, method: req.method, scheme: 'http', client: clientOf(req.socket) });
  send(err);
}

/**
 * `GET /path` + `Host: h` → `GET http://h:80/path`. Only origin-form with exactly one Host naming
 * port 80 is accepted: the connection came from port 80, and a Host naming another port (or two
 * Hosts) means client and proxy would disagree about the destination.
 */
export function toProxyForm(req: { url?: string | undefined; headers: http.IncomingHttpHeaders; rawHeaders: string[] }): void {
  delete req.headers['proxy-authorization']; // identity is the source address only
  const url = req.url ?? '';
  if (!url.startsWith('/')) throw new TurretError('bad_target', 'a redirected plain-HTTP request must use origin-form (GET /path with a Host header)');
  const hosts = req.rawHeaders.filter((_, i) => i % 2 === 0).filter((k) => k.toLowerCase() === 'host').length;
  if (hosts !== 1) throw new TurretError('bad_request', 'a redirected plain-HTTP request needs exactly one Host header');
  let t;
  try {
    t = parseAuthority(req.headers.host ?? '', HTTP_PORT);
  } catch {
    throw new TurretError('bad_target', 'the Host header is not a valid authority');
  }
  if (t.port !== HTTP_PORT) throw new TurretError('misdirected_request', `Host names port ${t.port}, but the connection was redirected from port ${HTTP_PORT}`);
  req.url = `http://${formatAuthority(t)}${url}`;
}
