/**
 * connect → forward → scrub. The request body streams from the client to the upstream client
 * (upstream-h1.ts, Turret's own HTTP/1.1 on Node's llhttp); the response
 * body streams back through a decoder (gzip/deflate/br, so compressed bodies can be scrubbed)
 * and the scrubber to the client. Nothing is buffered beyond the scrubber's bounded window, so a
 * 1 GB download holds no more memory than a 1 KB one. This file is the request half; the
 * response half is respond-upstream.ts.
 */
import { pipeline } from 'node:stream/promises';
import { pipeline as pipeCb, Transform, type Readable } from 'node:stream';
import type { Scrubber } from '../../scrub/scrubber.js';
import { NO_BODY_PLAN, prepareRequestBody, requestHasBody, type BodyPlan } from '../../secrets/body.js';
import { routed, type Exchange } from './exchange.js';
import { boundQueueWait, type QueueBound } from '../queue-wait.js';
import type { H1Answer, H1Callback, H1Request } from '../upstream-h1.js';
import type { OriginPool } from '../upstream-h1-pool.js';
import type { ExchangeEnding } from '../ending.js';
import { causeOf, respond, respondTo, smallBodyError, upstreamError, type SentWatcher } from './respond-upstream.js';

function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

/** What prepareRequestBody gives for no body and no plan, without its promise. */
const NO_BODY = { body: undefined, length: undefined } as const;

/** The body's error listener of last resort (one function, not a closure per request). */
function ignoreError(): void {}

/**
 * Forwards the request and relays the response; the promise settles once the response is out (or
 * with the error that ended the exchange). A request without a body goes through forwardThen.
 */
export function forward(
  x: Exchange,
  scrubber: Scrubber,
  onRedaction: (type: string) => void,
  plan: BodyPlan = NO_BODY_PLAN,
  onUpstreamLatency?: (scheme: 'http' | 'https', seconds: number) => void,
): Promise<void> {
  if (requestHasBody(x.req.headers) || plan.buffered !== null) return forwardWithBody(x, scrubber, onRedaction, plan, onUpstreamLatency);
  return new Promise((resolve, reject) => forwardThen(x, scrubber, onRedaction, onUpstreamLatency, { resolve, reject }, settlePromise));
}

/** forward's promise, settled by forwardThen. */
function settlePromise(p: { resolve: () => void; reject: (e: unknown) => void }, _x: Exchange, err: unknown): void {
  if (err === undefined) p.resolve();
  else p.reject(err);
}

/**
 * What forwardThen tells its caller, exactly once: `err` undefined when the response is out, else
 * the error that ended the exchange (already mapped: the exchange's own cause first).
 */
export type Settle<C> = (ctx: C, x: Exchange, err: unknown) => void;

/**
 * A request without a body (the common GET): into its pool, and its answer relayed, without an
 * async frame or a promise per step. The pool's callback and the response's 'finish' / 'close'
 * carry it (one object per request, Forwarding), and `settle` hears the outcome once: the pipeline
 * passes one that finishes the exchange (pipeline.ts), forward() one that settles its promise.
 * Where an async forward() awaited the pool's answer and then the response (an async frame, three
 * promises and two microtask turns per request), this is one object and three small functions
 * (docs/benchmarks.md "Hot path → Thirteenth pass → flowfast"). Never throws.
 */
export function forwardThen<C>(
  x: Exchange,
  scrubber: Scrubber,
  onRedaction: (type: string) => void,
  onUpstreamLatency: ((scheme: 'http' | 'https', seconds: number) => void) | undefined,
  ctx: C,
  settle: Settle<C>,
): void {
  const f = new Forwarding(x, scrubber, onRedaction, onUpstreamLatency, ctx, settle);
  let pool: OriginPool;
  let queue: QueueBound;
  let path: string;
  try {
    const t = routed(x).target;
    const { scheme, host, port } = t;
    path = t.path;
    const origin = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    // The pool is looked up in the same turn as the request goes into it: a pool that held nothing
    // leaves UpstreamPool's map (upstream.ts), so one taken earlier could be a retired one.
    pool = x.state.upstream.pool(x.decision?.rule?.addressExceptions ?? [], x.agent ?? '', origin, scheme, host, port);
    // Waiting for one of this agent's own connections is bounded too (queue-wait.ts).
    queue = boundQueueWait(x.state.upstream.queueTimeoutMs, x.agent ?? '', origin, x.ending, true);
    f.queue = queue;
    f.scheme = scheme;
  } catch (e) {
    // Not the upstream's doing: the pipeline maps it as any stage's failure.
    return f.end(e);
  }
  f.sentAt = process.hrtime.bigint();
  try {
    pool.request({ method: x.req.method ?? 'GET', path, headers: x.upstreamHeaders, body: undefined, length: undefined }, queue.signal, queue, f.onAnswer);
    // The request is in the pool now: one handed an idle connection in this turn cleared its bound
    // already and arms no timer; one that waits (or dials) is bounded from here (queue-wait.ts). One
    // that failed at once was cleared too (Forwarding.answered).
    queue.start();
  } catch (e) {
    f.answered(e instanceof Error ? e : new Error(String(e)), null);
  }
}

/** One request of forwardThen, from its pool to its response being out. */
class Forwarding<C> implements SentWatcher {
  queue: QueueBound | null = null;
  scheme: 'http' | 'https' = 'https';
  sentAt = 0n;
  private done = false;
  /** The pool's callback: the answer's head (and a whole small body), or why there is none. */
  readonly onAnswer: H1Callback = (err, answer) => this.answered(err, answer);

  constructor(
    readonly x: Exchange,
    private readonly scrubber: Scrubber,
    private readonly onRedaction: (type: string) => void,
    private readonly onUpstreamLatency: ((scheme: 'http' | 'https', seconds: number) => void) | undefined,
    private readonly ctx: C,
    private readonly settle: Settle<C>,
  ) {}

  answered(err: Error | null, upstream: H1Answer | null): void {
    this.queue?.clear();
    const x = this.x;
    // Ended early (client close, client or total timeout, drain deadline: ending.ts)? Then that
    // is the cause, whatever the upstream client reports as a consequence.
    if (err !== null || upstream === null) return this.end(causeOf(x) ?? upstreamError(err ?? new Error('no answer')));
    // From here on a streamed body may fail at any moment (reset, bad framing, or our own
    // destroy()). A stream 'error' without a listener is an uncaught exception that stops the
    // whole process, so the body always has one; the stage that reads the body (pipeline,
    // capture) still sees the error through its own listeners.
    if (upstream.whole === null) upstream.body.on('error', ignoreError);
    // Includes the guarded connect when no pooled connection was free (upstream_connect_seconds has that part alone).
    this.onUpstreamLatency?.(this.scheme, Number(process.hrtime.bigint() - this.sentAt) / 1e9);
    let pending: Promise<void> | undefined;
    try {
      pending = respondTo(x, upstream, this.scrubber, this.onRedaction, this);
    } catch (e) {
      return this.end(causeOf(x) ?? e);
    }
    if (pending !== undefined)
      pending.then(
        () => this.end(undefined),
        (e: unknown) => this.end(causeOf(x) ?? e),
      );
  }

  /** The small response was written: it is out at its 'finish'; a 'close' before that is the client gone. */
  watch(res: Exchange['res']): void {
    const onFinish = (): void => {
      res.off('close', onClose);
      this.end(undefined);
    };
    const onClose = (): void => {
      res.off('finish', onFinish);
      if (res.writableFinished) return this.end(undefined);
      res.destroy();
      this.end(smallBodyError(this.x, Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })));
    };
    res.on('finish', onFinish).on('close', onClose);
  }

  /** Tells `settle` once: undefined when the response is out, else the error. */
  end(err: unknown): void {
    if (this.done) return;
    this.done = true;
    const settle = this.settle;
    settle(this.ctx, this.x, err);
  }
}

/** The request with a body: streamed (or sent whole once prepared), then the response relayed. */
async function forwardWithBody(
  x: Exchange,
  scrubber: Scrubber,
  onRedaction: (type: string) => void,
  plan: BodyPlan,
  onUpstreamLatency?: (scheme: 'http' | 'https', seconds: number) => void,
): Promise<void> {
  const { req } = x;
  const { scheme, host, port, path } = routed(x).target;
  const rule = x.decision?.rule;
  const origin = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const bodyExpected = requestHasBody(req.headers);
  const length = req.headers['content-length'];
  // Handle substitution in the body may change its length (secrets/body.ts corrects it).
  // pipeline, not pipe: a client that goes away mid-body must fail the body the upstream client
  // is sending, or the upstream request waits for the rest forever (ending.ts).
  const source = bodyExpected
    ? (pipeCb(
        req,
        counter((n) => (x.bytesIn += n)),
        () => {},
      ) as Readable)
    : null;
  const sent = source === null && plan.buffered === null ? NO_BODY : await prepareRequestBody(source, length, plan);

  // The pool is looked up in the same turn as the request goes into it: a pool that held nothing
  // leaves UpstreamPool's map (upstream.ts), so one taken before an await could be a retired one.
  const pool = x.state.upstream.pool(rule?.addressExceptions ?? [], x.agent ?? '', origin, scheme, host, port);
  // Ended early (client close, client or total timeout, drain deadline: ending.ts)? Then that
  // is the cause, whatever the upstream client reports as a consequence.
  // Waiting for one of this agent's own connections is bounded too (queue-wait.ts).
  const queue = boundQueueWait(x.state.upstream.queueTimeoutMs, x.agent ?? '', origin, x.ending, true);
  let upstream: H1Answer;
  const sentAt = process.hrtime.bigint();
  try {
    const answer = send(pool, { method: req.method ?? 'GET', path, headers: x.upstreamHeaders, body: sent.body, length: sent.length }, queue.signal, queue);
    // The request is in the pool now: one handed an idle connection in this turn cleared its bound
    // already and arms no timer; one that waits (or dials) is bounded from here (queue-wait.ts).
    queue.start();
    upstream = await answer;
  } catch (e) {
    throw causeOf(x) ?? upstreamError(e);
  } finally {
    queue.clear();
  }
  // Includes the guarded connect when no pooled connection was free (upstream_connect_seconds has that part alone).
  onUpstreamLatency?.(scheme, Number(process.hrtime.bigint() - sentAt) / 1e9);

  try {
    await respond(x, upstream, scrubber, onRedaction);
  } catch (e) {
    throw causeOf(x) ?? e;
  }
}

/** One request through `pool`, as a promise of its answer (its head, and a whole small body). */
function send(pool: OriginPool, r: H1Request, ending: ExchangeEnding, bound: { clear(): void }): Promise<H1Answer> {
  return new Promise((resolve, reject) => {
    pool.request(r, ending, bound, (err, answer) => {
      if (err !== null || answer === null) reject(err ?? new Error('no answer'));
      else {
        // See Forwarding.answered: the body always has an 'error' listener.
        if (answer.whole === null) answer.body.on('error', ignoreError);
        resolve(answer);
      }
    });
  });
}
