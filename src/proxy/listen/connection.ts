/**
 * Per-connection state, owned by the proxy server (server.ts) and shared by its HTTP servers
 * (outer, inner, transparent plain): which tunnel a decrypted connection belongs to, the requests
 * on it whose responses have not finished, and what its parser error handling already did.
 */
import { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TurretError } from '../../core/errors.js';
import { clientClosedError, idleError, type LiveExchanges } from '../ending.js';
import type { Runtime } from '../runtime.js';
import { newExchange, type ClientRequest, type ClientResponse, type Exchange, type Tunnel } from '../stages/exchange.js';
import { runExchange } from '../stages/pipeline.js';

/**
 * Requests that may wait their turn on one connection (parsed behind others, serveRequest) before
 * the connection stops reading: a client pipelining thousands of requests holds at most this many,
 * plus what one read of the socket holds, until the ones ahead are answered.
 */
export const MAX_WAITING = 16;

export const HOLDS = 'a connection stops reading: too many pipelined requests wait their turn';
export const RESUMES = 'a connection reads again: its pipelined requests are being answered';

type Held = Duplex & { _paused?: boolean; parser?: { resume(): void } | null };

/** A request whose response has not finished; `x` when it runs the pipeline. */
export interface OpenRequest {
  req: ClientRequest;
  res: ClientResponse;
  x: Exchange | null;
}

export class ClientConnection {
  /** The intercepted tunnel this (decrypted) connection belongs to, or null. */
  tunnel: Tunnel | null = null;
  /** Requests whose response has not finished, oldest first. */
  readonly open = new Set<OpenRequest>();
  /** A response announced Connection: close: anything after it is never read, nor answered. */
  closing = false;
  /** Requests parsed behind others whose exchange has not started (serveRequest). */
  waiting = 0;
  /** This connection stopped reading the socket because `waiting` reached MAX_WAITING. */
  private holding = false;
  /** The most requests that waited at once while reading was stopped (logged when it resumes). */
  private peak = 0;
  /** A parser error was answered: llhttp repeats the error for every later read. */
  answered = false;
  /**
   * The decrypted connection inside this one, when it carries an intercepted tunnel: the idle
   * timer is on this (the outer) socket, the exchanges are on that one (idled).
   */
  inside: { conn: ClientConnection; socket: Duplex } | null = null;

  /**
   * Remember a request until its response has closed (so a later parser error can answer it),
   * and tell `live` when the request and the response close (ending.ts). One 'close' listener on
   * each, where the connection, the ending and the deadline had one each on 'finish' and 'close':
   * a response's 'close' follows its 'finish' in the same turn (Node emits it on the next tick),
   * and nothing of this connection is parsed in between (docs/benchmarks.md "Hot path", seventh pass).
   */
  track(req: ClientRequest, res: ClientResponse, x: Exchange | null, live: LiveExchanges | null = null): void {
    const entry = { req, res, x };
    this.open.add(entry);
    const ending = x?.ending ?? null;
    // 'close' fires at most once per request and per response: on() spares once()'s wrapper.
    res.on('close', () => {
      this.open.delete(entry);
      // `_last`: node:http's mark of a head that ends the connection (Connection: close given as a
      // field leaves shouldKeepAlive true); Turret writes heads with writeHead only, so getHeader
      // has nothing to say.
      if (!res.shouldKeepAlive || (res as { _last?: boolean })._last === true) this.closing = true;
      if (ending && live) live.responseClosed(ending, req, res);
    });
    if (ending && live) req.on('close', () => live.requestClosed(ending, req, res));
  }

  /** The client's connection closed: every response still queued behind another closes, unsent. */
  clientGone(): void {
    for (const o of this.open) {
      if (o.res.writableFinished || o.res.socket) continue; // Node closes the one it is sending
      o.x?.ending?.end(clientClosedError(o.req, o.res));
      this.closeUnsent(o.res);
    }
  }

  /** A queued response that will never be sent closes (Node closes only the one being sent). */
  private closeUnsent(res: ClientResponse): void {
    for (const o of this.open) {
      if (o.res !== res) continue;
      res.destroy();
      res.emit('close'); // the 'close' listener of track() takes it out of `open`
      return;
    }
  }

  /**
   * A request parsed behind others on this connection: its exchange starts (`start`) once every
   * response ahead of it has closed, so nothing it does (a stage, the upstream request) runs
   * before the connection is known to carry it. A response ahead that ended the connection
   * (a refusal with Connection: close, a response that was not keep-alive) makes it bytes after a
   * close, not a request: it is dropped, with no exchange and no record (docs/pipeline.md).
   * Responses close in order, so the last one open now is the one to wait for.
   */
  waitTurn(rt: Runtime, x: Exchange, socket: Held, start: () => void): void {
    let last: ClientResponse | null = null;
    for (const o of this.open) last = o.res;
    this.track(x.req, x.res, x, rt.live);
    this.waiting++;
    if (this.holding) this.peak = Math.max(this.peak, this.waiting);
    else if (this.waiting >= MAX_WAITING) {
      // node:http's own pause mark, which its readStart and h1-server.ts honour. What one read
      // of the socket held is still parsed: that, and MAX_WAITING, bound what waits.
      this.holding = true;
      this.peak = this.waiting;
      socket._paused = true;
      socket.pause();
      rt.log.debug(HOLDS, { waiting: this.waiting });
    }
    (last as ClientResponse).once('close', () => {
      this.waiting--;
      if (this.holding && this.waiting < MAX_WAITING) {
        this.holding = false;
        socket._paused = false;
        socket.parser?.resume();
        if (!socket.destroyed) socket.resume();
        rt.log.debug(RESUMES, { peak: this.peak });
      }
      this.turn(rt, x, socket, start);
    });
  }

  private turn(rt: Runtime, x: Exchange, socket: Duplex, start: () => void): void {
    // A body the parser refused was answered 400 (server.ts): the pipeline records it, never dials.
    if (x.malformed) return start();
    if (this.closing) {
      x.ending?.end(clientClosedError(x.req, x.res)); // never recorded: no exchange ran
      this.closeUnsent(x.res);
      return;
    }
    // The client left (or a limit cut it) while it waited: the exchange runs already ended, so its
    // one record names the request and that cause, and nothing is sent upstream (the pool
    // refuses an ended exchange, upstream-h1-pool.ts).
    if (!x.ending?.cause && (socket.destroyed || !socket.writable)) x.ending?.end(clientClosedError(x.req, x.res));
    start();
  }

  /**
   * Resolves once every response open on this connection now has closed; null when none is. A
   * WebSocket upgrade pipelined behind requests waits for their responses (websocket.ts): Node
   * hands it the socket at once, and its answer would otherwise be written into theirs. Node took
   * its 'drain' listener off `socket` with the others, and that listener is what tells the response
   * being sent that the socket drained: until they close, 'drain' is passed on here, or a response
   * larger than the socket's buffers stalls for good (crash-pipelined-wait).
   */
  responsesClosed(socket: Duplex): Promise<void> | null {
    if (this.open.size === 0) return null;
    const drain = (): void => {
      for (const { res } of this.open) if (res.socket === socket && res.writableNeedDrain) res.emit('drain');
    };
    socket.on('drain', drain);
    return Promise.all([...this.open].map(({ res }) => new Promise<void>((resolve) => res.once('close', () => resolve())))).then(() => {
      socket.off('drain', drain);
    });
  }

  /**
   * The connection on `socket` had no traffic for idle_timeout and is about to be closed (server.ts,
   * transparent.ts): every exchange still open on it, or on the intercepted tunnel inside it, ends
   * with what it waited for (ending.ts idleError) rather than as the client's close
   * (crash-idle-stalled). Inside a tunnel, a response is unread when bytes wait on either socket.
   */
  idled(rt: Runtime, socket: { writableLength: number }): void {
    const s = Math.round(rt.limits.idleTimeoutMs / 100) / 10;
    for (const o of this.open) o.x?.ending?.end(idleError(o.req, socket, s));
    const inside = this.inside;
    if (inside) inside.conn.idled(rt, { writableLength: socket.writableLength + inside.socket.writableLength });
  }

  /** Ends the exchange of `req`, if it is open here and runs the pipeline, with `cause`. */
  end(req: ClientRequest, cause: TurretError): void {
    for (const o of this.open) if (o.req === req) o.x?.ending?.end(cause);
  }
}

/** The connections of one proxy server, by socket (the TLS socket for a decrypted tunnel). */
export class Connections {
  private readonly bySocket = new WeakMap<object, ClientConnection>();

  /**
   * A client's connection (proxy port, transparent listener) closes after idle_timeout without
   * traffic; what is still open on it, or in the tunnel inside it, ends first with the cause it
   * waited on (ClientConnection.idled).
   */
  closeWhenIdle(rt: Runtime, s: Socket): void {
    s.setTimeout(rt.limits.idleTimeoutMs, () => {
      this.of(s).idled(rt, s);
      s.destroy();
    });
  }

  of(socket: object): ClientConnection {
    let c = this.bySocket.get(socket);
    if (!c) {
      const conn = new ClientConnection();
      c = conn;
      this.bySocket.set(socket, c);
      // A pipelined request's response waits in Node's queue, unattached to the socket: when the
      // client leaves, Node closes neither it nor (a complete) request, so its exchange would never
      // end (nor be audited). Whatever is still unanswered ends here, as the client's doing.
      if (socket instanceof EventEmitter) socket.once('close', () => conn.clientGone());
    }
    return c;
  }

  /** The tunnel of the connection on `socket`, if it is a decrypted one. */
  tunnelOf(socket: object): Tunnel | null {
    return this.bySocket.get(socket)?.tunnel ?? null;
  }
}

/**
 * The connection's idle timeout again, for a socket Node has just handed over (CONNECT, upgrade).
 * Node's HTTP server clears a socket's timeout when a request follows a keep-alive one (and sets
 * its keep-alive timeout after a response): a tunnel or WebSocket session opened on a reused
 * connection had no idle limit at all and lived as long as the client wanted. The listener that
 * closes an idle connection (server.ts, transparent.ts) is still attached; only the time is reset.
 */
export function rearmIdle(rt: Runtime, socket: Duplex): void {
  if (socket instanceof Socket && socket.timeout !== rt.limits.idleTimeoutMs) socket.setTimeout(rt.limits.idleTimeoutMs);
}

export const WAITS = 'an upgrade or CONNECT waits for the responses ahead of it on its connection';

/**
 * `answer` a CONNECT (or a refusal written straight to the socket) only once the responses ahead
 * of it on its connection have been sent: Node hands over the socket as soon as the head is
 * parsed, so an answer written at once would land inside a response still being written. A
 * connection that closed meanwhile is destroyed first: `answer` then records without answering.
 * Never throws.
 */
export function afterEarlier(rt: Runtime, conn: ClientConnection, socket: Duplex, answer: () => unknown): void {
  const run = (): void => {
    try {
      rearmIdle(rt, socket);
      void answer();
    } catch {
      socket.destroy();
    }
  };
  const earlier = conn.responsesClosed(socket);
  if (!earlier) return run();
  rt.log.debug(WAITS);
  // Node took its own error listener off the socket when it handed it over: a reset while this
  // waits would otherwise be an uncaught exception.
  socket.on('error', () => socket.destroy());
  void earlier.then(() => {
    if (!socket.writable) socket.destroy();
    run();
  });
}

/** A request on `conn`: an exchange, tracked, its ending armed (ending.ts), run through the pipeline. */
export function serveRequest(rt: Runtime, conn: ClientConnection, req: ClientRequest, res: ClientResponse): void {
  // The same for a request that follows a keep-alive one on a client's own connection (a decrypted
  // one has the limit on the connection under it): a client that stopped reading its response
  // otherwise held the connection, and the upstream's, until request_timeout (crash-idle-stalled).
  if (!conn.tunnel) rearmIdle(rt, req.socket);
  // After a response that ended the connection, what was parsed is not a request (waitTurn).
  if (conn.closing) return;
  const x = newExchange(req, res, conn.tunnel, rt.state);
  x.ending = rt.live.arm(rt.limits, req);
  if (conn.open.size > 0) return conn.waitTurn(rt, x, req.socket, () => void runExchange(rt, x));
  conn.track(req, res, x, rt.live);
  void runExchange(rt, x);
}
