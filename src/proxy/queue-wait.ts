/**
 * The bound on how long a request waits for one of its agent's own upstream connections
 * (`upstream_queue_timeout`, upstream.ts: one pool per agent and origin). An agent whose
 * connections to an origin are all held (a hanging endpoint, slow uploads) would otherwise have its
 * further requests wait in undici's queue until request_timeout (15 min by default); past the bound
 * such a request is answered 503 upstream_queue_timeout without ever reaching the upstream.
 *
 * The wait ends when undici hands the request to a connection (onRequestStart, which comes after
 * the connect when a new connection had to be opened). undici tells that only to the request's
 * dispatch handler, so an interceptor on each pool reports it, found by the request's signal.
 */
import type { Dispatcher } from 'undici';
import { TurretError } from '../core/errors.js';
import { ExchangeEnding } from './ending.js';

/** The signal of each request being bounded → its bound, cleared when the request got a connection. */
const waiting = new WeakMap<object, QueueBound>();

/**
 * The queue-wait bound of one upstream request. One object and one timer per request, no
 * closures: the timer gets the bound as its argument (a small request allocated three closures and
 * a result object here, docs/benchmarks.md "Hot path", fifth pass).
 */
export class QueueBound {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    /** The request's signal: the exchange's own ending, which the queue bound ends too. */
    readonly signal: ExchangeEnding,
    private readonly ms: number,
    private readonly agent: string,
    private readonly origin: string,
  ) {
    if (ms <= 0) return;
    this.timer = setTimeout(fireBound, ms, this);
    this.timer.unref();
    waiting.set(signal, this);
  }

  /** True while the bound runs (the request has not got a connection, nor ended). */
  get armed(): boolean {
    return this.timer !== null;
  }

  /** The wait passed the bound: the exchange ends with upstream_queue_timeout. */
  fire(): void {
    this.timer = null;
    waiting.delete(this.signal);
    const s = Math.round(this.ms / 100) / 10;
    this.signal.end(
      new TurretError(
        'upstream_queue_timeout',
        `all of agent ${this.agent}'s upstream connections to ${this.origin} stayed busy for ${s}s (upstream_queue_timeout; upstream_connections_per_agent bounds them)`,
      ),
    );
  }

  /** Stop the bound (the request got a connection, failed or ended some other way). */
  clear(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
    waiting.delete(this.signal);
  }
}

function fireBound(b: QueueBound): void {
  b.fire();
}

/**
 * Bounds the queue wait of one upstream request (`ms` 0: no bound). The exchange's own ending
 * (ending.ts) is the request's signal and the one ended, with the queue timeout as its cause: no
 * second controller and no AbortSignal.any per request (together ~10 µs of a small request's CPU,
 * docs/benchmarks.md "Hot path"). Without an ending (none armed), one of its own serves.
 */
export function boundQueueWait(ms: number, agent: string, origin: string, ending: ExchangeEnding | null): QueueBound {
  return new QueueBound(ending ?? new ExchangeEnding(), ms, agent, origin);
}

/**
 * A request's handler that tells boundQueueWait when the request got a connection. It stays in
 * undici's legacy handler shape (onConnect … onComplete), the shape request()'s own handler has:
 * a compose() interceptor (what this was before) sees only the new shape, so undici wrapped every
 * request's handler twice (WrapHandler, then UnwrapHandler back) and each callback crossed both
 * adapters and a Proxy around the pool — ~5% of a small request's CPU (docs/benchmarks.md "Hot
 * path", fourth pass). onConnect is where undici hands the request to a connection (after the
 * connect when a new one had to be opened): the moment the adapters reported as onRequestStart.
 * Only request()'s handler passes here, so only its five callbacks are relayed (undici calls the
 * optional ones, onResponseStarted and onBodySent, only when a handler has them).
 */
class StartReport implements Dispatcher.DispatchHandler {
  constructor(
    private readonly handler: Dispatcher.DispatchHandler,
    private readonly bound: QueueBound,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    this.bound.clear();
    this.handler.onConnect?.(abort);
  }
  onError(err: Error): void {
    this.handler.onError?.(err);
  }
  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    return this.handler.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
  }
  onData(chunk: Buffer): boolean {
    return this.handler.onData?.(chunk) ?? true;
  }
  onComplete(trailers: string[] | null): void {
    this.handler.onComplete?.(trailers);
  }
}

/**
 * The pool requests dispatch to: `agent`, with the handler of each bounded request (its signal
 * is one boundQueueWait registered) wrapped to report its start. Only request() is offered.
 */
export class StartReporting {
  constructor(private readonly agent: Dispatcher) {}

  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // request() passes its options through, signal included (the type names only the dispatch fields).
    const signal = (opts as { signal?: unknown }).signal;
    const bound = typeof signal === 'object' && signal !== null ? waiting.get(signal) : undefined;
    return this.agent.dispatch(opts, bound ? new StartReport(handler, bound) : handler);
  }

  request(opts: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData>;
  request(opts: Dispatcher.RequestOptions, callback: (err: Error | null, data: Dispatcher.ResponseData) => void): void;
  request(opts: Dispatcher.RequestOptions, callback?: (err: Error | null, data: Dispatcher.ResponseData) => void): Promise<Dispatcher.ResponseData> | void {
    // undici's request() builds its handler and calls this.dispatch: this object's, above.
    return (this.agent.request as (this: StartReporting, ...a: unknown[]) => Promise<Dispatcher.ResponseData> | void).call(this, opts, callback);
  }
}

/**
 * undici's request() on `dispatcher`, settled with the signal's reason as soon as the signal
 * aborts. undici notices an abort of a request still waiting in its queue only when a connection
 * takes it (it then aborts it unsent), so without this a queued request would end only after some
 * held connection freed up: its 503 or its client_closed record would wait as long. And every
 * request waits there a moment: undici checks an idle keep-alive socket for a pending close in a
 * setImmediate before writing to it. request()'s callback form: one promise per request, not
 * undici's promise and a second one racing it (docs/benchmarks.md "Hot path", seventh pass).
 */
export function requestOrAbort(dispatcher: Pick<Dispatcher, 'request'>, opts: Dispatcher.RequestOptions, signal: ExchangeEnding): Promise<Dispatcher.ResponseData> {
  return new Promise((resolve, reject) => {
    let lost = false;
    const onAbort = (): void => {
      lost = true;
      reject(signal.reason as Error);
    };
    if (signal.aborted) onAbort();
    else signal.once('abort', onAbort);
    dispatcher.request(opts, (err, data) => {
      signal.removeListener('abort', onAbort);
      if (err) reject(err);
      // Answered after all (a race with the abort): nobody reads this body.
      else if (lost) data.body.destroy();
      else resolve(data);
    });
  });
}
