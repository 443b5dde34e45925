/**
 * Every exchange ends, and its record names why. One ending per request (its own small abort signal) carries the
 * cause of an early end to the upstream request (undici aborts it, so its pool connection is
 * released) and to the one record finish.ts writes:
 *
 * - the client closed the connection (or only its sending side) before the exchange completed
 *   → client_closed, whatever phase it was in (body, waiting for the response, mid-response);
 * - the client was too slow (limits.ts's guard, Node's requestTimeout) → client_timeout;
 * - the whole-exchange limit passed (request_timeout) → upstream_timeout, or client_timeout while
 *   the client is still sending its request body;
 * - the drain deadline cut what was left at SIGTERM → drain_deadline.
 *
 * The first cause wins: the later ones are consequences (a drain cut closes the socket, which
 * then looks like a client close). Errors that arrive after an abort are reported as the abort's
 * cause (forward.ts, pipeline.ts), never as an upstream failure.
 */
import type { ClientRequest, ClientResponse } from './stages/exchange.js';
import { TurretError, isTurretError, type ErrorCode } from '../core/errors.js';
import type { Limits } from './limits.js';
import { CoarseTimeout } from './coarse-timers.js';

/** Codes of exchanges cut short for a reason that is neither policy nor an upstream failure. */
export const ABORT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['client_closed', 'drain_deadline', 'client_tls_failed']);

/** Why a client close ended an exchange, by the phase it was in. */
export function clientClosedError(req: ClientRequest, res: ClientResponse): TurretError {
  const phase = !req.complete ? 'before sending the whole request' : !res.headersSent ? 'while waiting for the response' : 'before the whole response was sent';
  return new TurretError('client_closed', `the client closed the connection ${phase}`);
}

/**
 * The client's connection had no traffic for idle_timeout and Turret closes it: the exchange
 * waited for whoever was silent. The client, when its request was unfinished or the response sat
 * unread in the socket's buffer; the upstream otherwise (its answer paused). Not client_closed:
 * the client closed nothing.
 */
export function idleError(req: ClientRequest, socket: { writableLength: number }, s: number): TurretError {
  if (!req.complete) return new TurretError('client_timeout', `the client sent nothing more of its request for ${s}s (idle_timeout)`);
  if (socket.writableLength > 0) return new TurretError('client_timeout', `the client read nothing of the response for ${s}s (idle_timeout)`);
  return new TurretError('upstream_timeout', `nothing came from the upstream, nor from the client, for ${s}s (idle_timeout)`);
}

/**
 * The whole-exchange limit passed. While the client is still sending its request body the wait is
 * the client's, not the upstream's: blaming the upstream would raise a false outage alert.
 */
function totalLimitError(req: ClientRequest, s: number): TurretError {
  return req.complete
    ? new TurretError('upstream_timeout', `the request took longer than the total limit of ${s}s (request_timeout)`)
    : new TurretError('client_timeout', `the client had not sent the whole request body when the total limit of ${s}s (request_timeout) passed`);
}

/**
 * How one exchange ends early, and the abort signal of its upstream request. undici's request()
 * takes an EventEmitter-shaped signal (`aborted`, `reason`, `on`/`once`/`removeListener`) as well
 * as an AbortSignal; this one is a plain object with a listener list, where an AbortController
 * and an EventTarget listener per request were ~2% of a small request's CPU (docs/benchmarks.md
 * "Hot path", fourth pass). Listeners run synchronously at the first end, once, as an
 * AbortSignal's do.
 */
export class ExchangeEnding {
  /** True once ended (undici reads it when the request starts). */
  aborted = false;
  /** The cause, once ended (undici aborts the request with it). */
  reason: TurretError | undefined = undefined;
  private listeners: Array<(() => void) | null> | null = null;
  /**
   * The whole-exchange deadline (LiveExchanges.arm), cleared when the response closes: on the
   * shared coarse clock (coarse-timers.ts) when it is a second or more, as request_timeout is.
   */
  deadline: CoarseTimeout<ExchangeEnding> | null = null;
  /** The request the deadline is of, and the limit in ms (what its cause says). */
  request: ClientRequest | null = null;
  totalMs = 0;

  /** Ends the exchange early with `cause` (the first cause wins). */
  end(cause: TurretError): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = cause;
    const run = this.listeners;
    if (run) {
      // The list stays in place while it runs, so a listener removed by an earlier one does not
      // run (as with an AbortSignal); removeListener empties its slot instead of shifting the list.
      for (let i = 0; i < run.length; i++) {
        const f = run[i];
        run[i] = null;
        if (f) f();
      }
    }
    this.listeners = null;
  }

  /** The cause the exchange was ended with, or null while it runs. */
  get cause(): TurretError | null {
    return this.aborted && isTurretError(this.reason) ? this.reason : null;
  }

  /** `f` runs once, when the exchange ends ('abort' is the only event). */
  once(_event: 'abort', f: () => void): this {
    if (!this.aborted) (this.listeners ??= []).push(f);
    return this;
  }

  /** The same as once: the event happens at most once. */
  on(event: 'abort', f: () => void): this {
    return this.once(event, f);
  }

  removeListener(_event: 'abort', f: () => void): this {
    const l = this.listeners;
    const i = l ? l.indexOf(f) : -1;
    if (l && i >= 0) {
      if (this.aborted) l[i] = null;
      else l.splice(i, 1);
    }
    return this;
  }
}

/** The whole-exchange deadline of `ending` passed (a timer argument: no closure per request). */
function endTotal(ending: ExchangeEnding): void {
  ending.deadline = null;
  if (ending.request) ending.end(totalLimitError(ending.request, Math.round(ending.totalMs / 100) / 10));
}

/**
 * The exchanges of one runtime not yet ended (the drain deadline cuts them all). An armed ending
 * learns of its client through requestClosed and responseClosed, which the connection's own
 * listeners of each request call (listen/connection.ts): one 'close' listener per response and
 * per request in all, not one per concern (docs/benchmarks.md "Hot path", seventh pass).
 */
export class LiveExchanges {
  private readonly live = new Set<ExchangeEnding>();

  /** Arms the ending of one request: the whole-exchange deadline. */
  arm(limits: Limits, req: ClientRequest): ExchangeEnding {
    const ending = new ExchangeEnding();
    this.live.add(ending);
    if (limits.requestTimeoutMs > 0) {
      ending.request = req;
      ending.totalMs = limits.requestTimeoutMs;
      ending.deadline = new CoarseTimeout(endTotal, ending).arm(limits.requestTimeoutMs);
    }
    return ending;
  }

  /**
   * The request closed. One whose body never completed: the client (or a cut that already set
   * its own cause) ended it. Stop the upstream request too, so it holds no pool connection and no
   * upstream work for nobody. (A request's 'close' also follows a normal end of its body; only an
   * incomplete one counts.)
   */
  requestClosed(ending: ExchangeEnding, req: ClientRequest, res: ClientResponse): void {
    if (!req.complete) ending.end(clientClosedError(req, res));
  }

  /** The response closed: its deadline stops; one that never finished was ended by the client. */
  responseClosed(ending: ExchangeEnding, req: ClientRequest, res: ClientResponse): void {
    if (ending.deadline) {
      ending.deadline.clear();
      ending.deadline = null;
    }
    this.live.delete(ending);
    if (!res.writableFinished) ending.end(clientClosedError(req, res));
  }

  /** The drain deadline: every exchange still running ends with `cause`; how many were cut. */
  cutAll(cause: TurretError): number {
    let n = 0;
    for (const ending of this.live) {
      if (ending.cause) continue;
      ending.end(cause);
      n++;
    }
    return n;
  }
}
