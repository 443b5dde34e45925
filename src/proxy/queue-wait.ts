/**
 * The bound on how long a request waits for one of its agent's own upstream connections
 * (`upstream_queue_timeout`, upstream.ts: one pool per agent and origin). An agent whose
 * connections to an origin are all held (a hanging endpoint, slow uploads) would otherwise have its
 * further requests wait in the pool's queue until request_timeout (15 min by default); past the
 * bound such a request is answered 503 upstream_queue_timeout without ever reaching the upstream.
 *
 * The wait ends when the pool hands the request to a connection (upstream-h1-pool.ts OriginPool: an
 * idle one, or a new one once it is connected), which calls `clear`.
 */
import { TurretError } from '../core/errors.js';
import { ExchangeEnding } from './ending.js';
import { CoarseTimeout } from './coarse-timers.js';

/**
 * The queue-wait bound of one upstream request. One object and one timer per request, no
 * closures: the timer gets the bound as its argument (a small request allocated three closures and
 * a result object here, docs/benchmarks.md "Hot path", fifth pass). The timer is a coarse one
 * (coarse-timers.ts) for a bound of a second or more, and forward.ts starts it only once the
 * request is in its pool (`start`): a request the pool hands an idle connection in that same turn
 * (nearly every one on a warm pool) has had its bound cleared already, and arms nothing.
 */
export class QueueBound {
  private timer: CoarseTimeout<QueueBound> | null = null;
  /** The bound applies and has not ended (the request has no connection yet). */
  private running: boolean;

  constructor(
    /** The request's signal: the exchange's own ending, which the queue bound ends too. */
    readonly signal: ExchangeEnding,
    private readonly ms: number,
    private readonly agent: string,
    private readonly origin: string,
  ) {
    this.running = ms > 0;
  }

  /** True while the bound runs (the request has not got a connection, nor ended). */
  get armed(): boolean {
    return this.running;
  }

  /** Starts the timer, unless the bound was cleared already (or there is none). */
  start(): this {
    if (this.running && this.timer === null) this.timer = new CoarseTimeout(fireBound, this as QueueBound).arm(this.ms);
    return this;
  }

  /** The wait passed the bound: the exchange ends with upstream_queue_timeout. */
  fire(): void {
    this.running = false;
    this.timer = null;
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
    this.running = false;
    if (this.timer === null) return;
    this.timer.clear();
    this.timer = null;
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
export function boundQueueWait(ms: number, agent: string, origin: string, ending: ExchangeEnding | null, later = false): QueueBound {
  const b = new QueueBound(ending ?? new ExchangeEnding(), ms, agent, origin);
  // `later`: the caller starts it once the request is in the pool (QueueBound.start).
  return later ? b : b.start();
}
