/**
 * The pool of one origin for Turret's upstream HTTP/1.1 client (upstream-h1.ts has the
 * connection, the request and the answer): at most `max` connections, requests waiting in FIFO
 * order, idle connections parked until a request takes them, and the pool's own end once it holds
 * nothing (docs/pipeline.md "Upstream").
 */
import { setMaxListeners } from 'node:events';
import { TurretError } from '../core/errors.js';
import type { ExchangeEnding } from './ending.js';
import { Call, H1Conn, type Dial, type H1Callback, type H1Request, type H1Timeouts } from './upstream-h1.js';

/** The connections to one origin of one (exceptions, agent) pool. */
export class OriginPool {
  private readonly idle: H1Conn[] = [];
  private readonly busy = new Set<H1Conn>();
  private readonly queue: Call[] = [];
  /** Requests being sent once more on a new connection (retry): neither queued nor on a connection. */
  private readonly retrying = new Set<Call>();
  /** Connections open or being opened. */
  private open = 0;
  private connecting = 0;
  closed = false;
  /** onEmpty was called, and no request came since. */
  private told = false;
  /** Aborts the connects under way on a forced close (made with the first connect). */
  private stop: AbortController | null = null;

  /**
   * `onEmpty` is told when the pool holds nothing (no connection open or being opened, nobody
   * waiting or being retried): its owner drops it (upstream.ts), as undici's Agent dropped an
   * origin's pool when its last connection closed. The pool then counts as closed; a request that
   * still reaches it is served (the owner must not hand it out again).
   */
  constructor(
    private readonly dial: Dial,
    private readonly max: number,
    readonly timeouts: H1Timeouts,
    private readonly onEmpty: ((p: OriginPool) => void) | null = null,
  ) {}

  /** True while the pool holds a connection (open or being opened) or a request. */
  get busyOrIdle(): boolean {
    return this.open > 0 || this.queue.length > 0 || this.retrying.size > 0;
  }

  /** Tells the owner once the pool holds nothing. */
  private checkEmpty(): void {
    if (this.told || this.busyOrIdle || this.onEmpty === null) return;
    this.told = true;
    this.closed = true;
    const f = this.onEmpty;
    f(this);
  }

  /**
   * Sends `req`; `cb` gets the answer once its head arrived, or the error. `bound` (queue-wait.ts)
   * is cleared when the request gets its connection. When `ending` ends first,
   * `cb` gets its reason at once, wherever the request is.
   */
  request(req: H1Request, ending: ExchangeEnding, bound: { clear(): void } | null, cb: H1Callback): void {
    const call = new Call(this, req, ending, bound, cb);
    this.told = false;
    if (ending.aborted) {
      call.fail(ending.reason ?? new TurretError('client_closed'));
      return;
    }
    ending.once('abort', call.onAbort);
    const c = this.takeIdle();
    if (c !== null) {
      this.start(c, call);
      return;
    }
    this.queue.push(call);
    this.pump();
  }

  private takeIdle(): H1Conn | null {
    for (let c = this.idle.pop(); c !== undefined; c = this.idle.pop()) if (!c.dead) return c;
    return null;
  }

  private start(c: H1Conn, call: Call): void {
    this.busy.add(c);
    call.bound?.clear();
    c.send(call);
  }

  /** Hands idle connections to waiting requests; opens connections while under the bound. */
  private pump(): void {
    while (this.queue.length > 0) {
      const c = this.takeIdle();
      if (c === null) break;
      this.start(c, this.queue.shift() as Call);
    }
    while (this.queue.length > this.connecting && this.open < this.max) this.connect();
  }

  /** The signal every connect of this pool gets (one listener per connect under way). */
  private get signal(): AbortSignal {
    if (this.stop === null) {
      this.stop = new AbortController();
      setMaxListeners(0, this.stop.signal);
    }
    return this.stop.signal;
  }

  private connect(): void {
    this.open++;
    this.connecting++;
    this.dial(this.signal).then(
      (socket) => {
        this.connecting--;
        if (this.closed && this.queue.length === 0) {
          this.open--;
          socket.destroy();
          this.checkEmpty();
          return;
        }
        const c = new H1Conn(socket, this);
        const next = this.queue.shift();
        if (next !== undefined) this.start(c, next);
        else this.idled(c);
      },
      (err: unknown) => {
        this.connecting--;
        this.open--;
        // The oldest waiting request learns why; the others get their own try.
        const next = this.queue.shift();
        next?.fail(err instanceof Error ? err : new Error(String(err)));
        this.pump();
        this.checkEmpty();
      },
    );
  }

  /** A request whose reused connection closed before answering: once more, on a new connection. */
  retry(call: Call): void {
    // It replaces the connection that closed (dropped right after), so the bound holds.
    this.open++;
    this.retrying.add(call);
    this.dial(this.signal).then(
      (socket) => {
        // Not retrying any more (its exchange ended, or a forced close failed it): the new
        // connection serves the queue, or idles, or closes with the pool.
        const mine = this.retrying.delete(call) && !call.settled;
        const c = new H1Conn(socket, this);
        if (mine) this.start(c, call);
        else this.idled(c);
      },
      (err: unknown) => {
        this.open--;
        this.retrying.delete(call);
        call.fail(err instanceof Error ? err : new Error(String(err)));
        this.pump();
        this.checkEmpty();
      },
    );
  }

  /** `c` finished its response and may take another request. */
  idled(c: H1Conn): void {
    this.busy.delete(c);
    const next = this.queue.shift();
    if (next !== undefined) this.start(c, next);
    else if (this.closed) c.destroy(null);
    else {
      c.park();
      this.idle.push(c);
    }
  }

  /** `c` closed. */
  dropped(c: H1Conn): void {
    this.open--;
    this.busy.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (this.queue.length > 0) this.pump();
    this.checkEmpty();
  }

  /** A waiting (or retrying) request leaves the queue (its exchange ended, or it failed). */
  unqueue(call: Call): void {
    this.retrying.delete(call);
    const i = this.queue.indexOf(call);
    if (i >= 0) this.queue.splice(i, 1);
    this.checkEmpty();
  }

  /**
   * Graceful: idle connections close now, busy ones after their response, waiting requests are
   * still served. Forced: every connection closes and every waiting request fails.
   */
  close(force: boolean): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.destroy(null);
    if (!force) return;
    // The waiting requests first: a busy connection's close would otherwise open a new one for
    // them (pump), a connect that could hold the exiting process up to its timeout.
    const calls = [...this.queue.splice(0), ...this.retrying];
    this.retrying.clear();
    for (const call of calls) call.fail(new TurretError('upstream_connect_failed', 'the proxy closed its upstream connections'));
    for (const c of [...this.busy]) c.destroy(new TurretError('upstream_closed', 'the proxy closed its upstream connections'));
    // Connects under way stop now rather than at their timeout (they would hold an exiting process).
    this.stop?.abort();
  }
}
