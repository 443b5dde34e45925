/**
 * Every exchange ends, and its record names why. One AbortController per request carries the
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
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TurretError, isTurretError, type ErrorCode } from '../core/errors.js';
import type { Limits } from './limits.js';

const controllers = new WeakMap<IncomingMessage, AbortController>();
/** Exchanges not yet ended, per server (the drain deadline cuts them all). */
const liveByOwner = new WeakMap<object, Set<IncomingMessage>>();

/** Codes of exchanges cut short for a reason that is neither policy nor an upstream failure. */
export const ABORT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['client_closed', 'drain_deadline', 'client_tls_failed']);

/** Why a client close ended an exchange, by the phase it was in. */
export function clientClosedError(req: IncomingMessage, res: ServerResponse): TurretError {
  const phase = !req.complete ? 'before sending the whole request' : !res.headersSent ? 'while waiting for the response' : 'before the whole response was sent';
  return new TurretError('client_closed', `the client closed the connection ${phase}`);
}

/**
 * The whole-exchange limit passed. While the client is still sending its request body the wait is
 * the client's, not the upstream's: blaming the upstream would raise a false outage alert.
 */
function totalLimitError(req: IncomingMessage, s: number): TurretError {
  return req.complete
    ? new TurretError('upstream_timeout', `the request took longer than the total limit of ${s}s (request_timeout)`)
    : new TurretError('client_timeout', `the client had not sent the whole request body when the total limit of ${s}s (request_timeout) passed`);
}

/**
 * Arms the cause-carrying controller of one request: the whole-exchange deadline, and the client
 * close. `owner` groups the exchanges the drain deadline may cut (one per server).
 */
export function armExchange(owner: object, limits: Limits, req: IncomingMessage, res: ServerResponse): AbortSignal {
  const ac = new AbortController();
  controllers.set(req, ac);
  let live = liveByOwner.get(owner);
  if (!live) {
    live = new Set();
    liveByOwner.set(owner, live);
  }
  const set = live;
  set.add(req);
  const s = Math.round(limits.requestTimeoutMs / 100) / 10;
  const timer = limits.requestTimeoutMs > 0 ? setTimeout(() => endExchange(req, totalLimitError(req, s)), limits.requestTimeoutMs) : null;
  timer?.unref();
  // A request whose body never completed, or a response that never finished: the client (or a
  // cut that already set its own cause) ended it. Stop the upstream request too, so it holds no
  // pool connection and no upstream work for nobody. (A request's 'close' also follows a
  // normal end of its body; only an incomplete one counts.)
  req.once('close', () => {
    if (!req.complete) endExchange(req, clientClosedError(req, res));
  });
  res.once('close', () => {
    if (timer) clearTimeout(timer);
    set.delete(req);
    if (!res.writableFinished) endExchange(req, clientClosedError(req, res));
  });
  return ac.signal;
}

/** Ends an exchange early with `cause` (the first cause wins). */
export function endExchange(req: IncomingMessage, cause: TurretError): void {
  const ac = controllers.get(req);
  if (ac && !ac.signal.aborted) ac.abort(cause);
}

/** The cause an exchange was ended with, or null while it runs. */
export function causeOf(req: IncomingMessage): TurretError | null {
  const signal = controllers.get(req)?.signal;
  return signal?.aborted && isTurretError(signal.reason) ? signal.reason : null;
}

/** The drain deadline: every exchange of `owner` still running ends with drain_deadline. */
export function cutAll(owner: object, cause: TurretError): number {
  const live = liveByOwner.get(owner);
  if (!live) return 0;
  let n = 0;
  for (const req of live) {
    if (causeOf(req)) continue;
    endExchange(req, cause);
    n++;
  }
  return n;
}
