/**
 * Enforcement of the resource limits that are not a Node or undici option:
 *
 * - concurrent tunnels per agent (429 too_many_tunnels),
 * - the total time of one exchange (ending.ts: 504 upstream_timeout before the response starts, abort after),
 * - slow clients inside intercepted tunnels. Node checks `headersTimeout` and `requestTimeout`
 *   only for sockets a *listening* server accepted (Node 20: the check interval starts on
 *   'listening'), and the inner server (listen/h1-server.ts, Turret's own, handed each decrypted
 *   connection by `emit('connection')`) has no such check, so a client trickling a byte a second
 *   into a tunnel would never be cut. `guardSlowClients` applies the same two deadlines to those
 *   sockets (and to redirected plain HTTP's never-listening http.Server).
 *
 * The limits' names and defaults are here; their flags and parsing in cli/limits.ts.
 */
import type { EventEmitter } from 'node:events';
import type { ClientRequest, ClientResponse } from './stages/exchange.js';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TurretError } from '../core/errors.js';
import { sendErrorRaw } from './stages/respond.js';

/** Resource limits; names, flags and rationale in src/cli/limits.ts and docs/operations.md. */
export interface Limits {
  maxHeaderBytes: number;
  connectTimeoutMs: number;
  /** Upstream: request sent → response headers. */
  headersTimeoutMs: number;
  /** Upstream: longest pause between response body chunks. */
  bodyTimeoutMs: number;
  /** Client socket with no bytes either way. */
  idleTimeoutMs: number;
  /** Client: a complete request head within this of connecting or of the previous response. */
  clientHeadersTimeoutMs: number;
  /** Client: the whole request (head and body) within this; defeats a byte-a-second body. */
  clientRequestTimeoutMs: number;
  /** Whole exchange, first byte to the response's end; 0 = none. */
  requestTimeoutMs: number;
  maxTunnelsPerAgent: number;
  /** Upstream connections per (agent, origin): one agent's hung requests cannot take another's (upstream.ts). */
  upstreamConnectionsPerAgent: number;
  /** Longest wait for one of those connections (queue-wait.ts); 0 = up to request_timeout. */
  upstreamQueueTimeoutMs: number;
  /** Connections each client listener holds at most (listen/accept.ts); 0 = derived from the open-files limit. */
  maxClientConnections: number;
  /** Most bytes of one request body held in memory (SigV4 hashing, length correction). */
  maxBufferedBodyBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxHeaderBytes: 32 * 1024,
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 60_000,
  bodyTimeoutMs: 300_000,
  idleTimeoutMs: 120_000,
  clientHeadersTimeoutMs: 30_000,
  clientRequestTimeoutMs: 300_000,
  requestTimeoutMs: 900_000,
  maxTunnelsPerAgent: 64,
  upstreamConnectionsPerAgent: 64,
  upstreamQueueTimeoutMs: 30_000,
  maxClientConnections: 0,
  maxBufferedBodyBytes: 8 * 1024 * 1024,
};

/** What a slow client gets before its connection closes: 408 client_timeout (respond.ts writes it). */
export function clientTimeoutError(limits: Limits): TurretError {
  const s = Math.round(limits.clientHeadersTimeoutMs / 100) / 10;
  return new TurretError('client_timeout', `no complete request arrived within ${s}s (client_headers_timeout); the connection is closed`);
}

/** Open tunnels per agent, shared by every CONNECT of one Runtime. */
export class TunnelSlots {
  private readonly open = new Map<string, number>();

  /** Takes a slot or throws too_many_tunnels; the returned function gives it back (idempotent). */
  acquire(agent: string, max: number): () => void {
    const n = this.open.get(agent) ?? 0;
    if (n >= max) {
      throw new TurretError('too_many_tunnels', `agent ${agent} already has ${n} open tunnels (limit max_tunnels_per_agent=${max}); close some connections first`);
    }
    this.open.set(agent, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(agent) ?? 1) - 1;
      if (left <= 0) this.open.delete(agent);
      else this.open.set(agent, left);
    };
  }

  count(agent: string): number {
    return this.open.get(agent) ?? 0;
  }
}

/** Takes a tunnel slot for `agent` (Runtime.tunnelSlots) and gives it back when `socket` closes. */
export function holdTunnelSlot(rt: { tunnelSlots: TunnelSlots; limits: Limits }, agent: string, socket: Duplex): void {
  const release = rt.tunnelSlots.acquire(agent, rt.limits.maxTunnelsPerAgent);
  socket.once('close', release);
}

interface Watched {
  /** When the connection started waiting for a request head (connect, or previous response end). */
  waitingSince: number | null;
  /**
   * When the current request's head arrived. A request the parser finished (`complete`) is never
   * the client's delay, whether or not anyone read its body (a GET nobody reads emits 'end' only
   * once its response closed, so 'end' would let client_request_timeout cut a request that merely
   * waits for its upstream): the check reads `complete`, which the parser sets before the body's
   * 'end' and never unsets, so no 'end' listener per request is needed.
   */
  receivingSince: number | null;
  req: ClientRequest | null;
  /**
   * Requests on the connection whose response has not closed. A pipelined request can still wait
   * for its upstream after the one before it was answered: the connection is idle (waiting for
   * a head) only when none is left, or the guard would answer it 408 and close it.
   */
  unanswered: number;
  /** The listener each request on the connection adds: made once per connection, not per request. */
  responded: () => void;
}

export interface SlowClientGuard {
  stop(): void;
  /** Ends connections waiting for their next request (drain: they would only hold the process open). */
  closeIdle(): number;
}

/**
 * Applies clientHeadersTimeoutMs and clientRequestTimeoutMs to every connection `server` is
 * given (no check of Node's runs for a server that does not listen, see above).
 */
export function guardSlowClients(
  server: Pick<EventEmitter, 'on'>,
  limits: Limits,
  /** Ends a request's exchange with a cause (the server's connections hold the exchanges, connection.ts). */
  endRequest: (req: ClientRequest, cause: TurretError) => void,
  onTimeout: (socket: Socket) => void = () => {},
): SlowClientGuard {
  const watched = new Map<Socket, Watched>();
  server.on('connection', (socket: Socket) => {
    const w: Watched = {
      waitingSince: Date.now(),
      receivingSince: null,
      req: null,
      unanswered: 0,
      responded: () => {
        if (--w.unanswered > 0) return;
        w.unanswered = 0;
        w.req = null;
        w.receivingSince = null;
        w.waitingSince = Date.now();
      },
    };
    watched.set(socket, w);
    socket.once('close', () => watched.delete(socket));
  });
  server.on('request', (req: ClientRequest, res: ClientResponse) => {
    const w = watched.get(req.socket);
    if (!w) return;
    w.waitingSince = null;
    w.receivingSince = Date.now();
    w.req = req;
    w.unanswered++;
    // 'close' fires at most once per response: on() spares once()'s wrapper. 'close', not
    // 'finish': every response closes exactly once, answered or not.
    res.on('close', w.responded);
  });
  // An upgraded connection (WebSocket) is no longer HTTP: its lifetime is the upstream's, so it
  // leaves the watch. server.ts always has its own 'upgrade' listener on the inner server, so
  // adding one here does not change how Node treats upgrade requests.
  server.on('upgrade', (req: ClientRequest) => {
    watched.delete(req.socket);
  });
  const every = Math.max(50, Math.min(1_000, Math.floor(Math.min(limits.clientHeadersTimeoutMs, limits.clientRequestTimeoutMs) / 4)));
  const timer = setInterval(() => {
    const now = Date.now();
    for (const [socket, w] of watched) {
      if (w.waitingSince !== null && now - w.waitingSince > limits.clientHeadersTimeoutMs) {
        watched.delete(socket);
        // A keep-alive connection that merely sat idle gets the same answer as on the outer port.
        if (socket.writable) {
          onTimeout(socket);
          sendErrorRaw(socket, clientTimeoutError(limits), { scrub: (t) => t });
        }
        setTimeout(() => socket.destroy(), 100).unref();
      } else if (w.receivingSince !== null && w.req !== null && !w.req.complete && now - w.receivingSince > limits.clientRequestTimeoutMs) {
        watched.delete(socket);
        // The response may have started: closing is the only honest signal (the exchange is
        // audited with this cause, ending.ts).
        const e = new TurretError('client_timeout', 'the client did not send the whole request in time (client_request_timeout)');
        if (w.req) endRequest(w.req, e);
        w.req?.destroy(e);
        socket.destroy();
      }
    }
  }, every);
  timer.unref();
  return {
    stop: () => clearInterval(timer),
    closeIdle: () => {
      let n = 0;
      for (const [socket, w] of watched) {
        if (w.waitingSince === null) continue;
        watched.delete(socket);
        socket.destroy();
        n++;
      }
      return n;
    },
  };
}

/** Node's server options for the listening (outer) proxy server, from the limits. */
export function nodeServerTimeouts(limits: Limits): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  return {
    headersTimeout: limits.clientHeadersTimeoutMs,
    requestTimeout: limits.clientRequestTimeoutMs,
    // Node's default checks every 30 s, which would let a 1 s limit hold for 30 s.
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.clientHeadersTimeoutMs / 4))),
  };
}
