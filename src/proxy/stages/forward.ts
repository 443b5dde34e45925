/**
 * connect → forward → scrub. The request body streams from the client to the upstream client
 * (upstream-h1.ts, Turret's own HTTP/1.1 on Node's llhttp); the response
 * body streams back through a decoder (gzip/deflate/br, so compressed bodies can be scrubbed)
 * and the scrubber to the client. Nothing is buffered beyond the scrubber's bounded window, so a
 * 1 GB download holds no more memory than a 1 KB one.
 */
import { pipeline } from 'node:stream/promises';
import { pipeline as pipeCb, Transform, type Readable } from 'node:stream';
import { TurretError, isTurretError } from '../../core/errors.js';
import type { Redaction, Scrubber } from '../../scrub/scrubber.js';
import { NO_BODY_PLAN, prepareRequestBody, requestHasBody, type BodyPlan } from '../../secrets/body.js';
import { routed, type Exchange } from './exchange.js';
import { clientResponseHeaders } from './headers.js';
import { toolListFilterStream } from './mcp-filter.js';
import { checkTransferCoding, contentCoding, decoderFor } from './codings.js';
import { scansContentType } from './scrubbing.js';
import { captureFor } from './oauth.js';
import { respondSmall, sendSmall, smallBodyLength, type SmallBody } from './small-body.js';
import { HeadGate, prefetch, wholeNow } from './relay.js';
import { boundQueueWait, type QueueBound } from '../queue-wait.js';
import type { H1Answer, H1Callback, H1Request } from '../upstream-h1.js';
import type { OriginPool } from '../upstream-h1-pool.js';
import type { ExchangeEnding } from '../ending.js';
import { knownClean, noteClean } from '../clean-strings.js';

/** Why the exchange was ended early (client close, timeouts, drain: ending.ts), or null. */
function causeOf(x: Exchange): TurretError | null {
  return x.ending?.cause ?? null;
}

/**
 * Map whatever the upstream client (upstream-h1.ts, whose own failures are TurretErrors already),
 * the connector or a response decoder threw to a TurretError (the connector's pass through).
 */
export function upstreamError(e: unknown): TurretError {
  if (isTurretError(e)) return e;
  const code = (e as { code?: string }).code ?? '';
  // zlib (Z_DATA_ERROR, Z_BUF_ERROR) and brotli (ERR__ERROR_FORMAT_…) decoder failures: a body
  // that does not decode with its declared coding.
  if (code.startsWith('Z_') || code.startsWith('ERR__ERROR_')) {
    return new TurretError('upstream_protocol_error', 'the upstream body does not decode with its declared content coding', { cause: e });
  }
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') {
    return new TurretError('upstream_tls_failed', 'the upstream TLS certificate could not be verified', { cause: e });
  }
  if (code === 'EMFILE' || code === 'ENFILE') {
    return new TurretError('emfile', `the proxy has no file descriptor left to open an upstream connection (${code})`, { cause: e });
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return new TurretError('upstream_closed', 'the upstream closed the connection before its response was complete', { cause: e });
  }
  if (code.startsWith('HPE_')) {
    return new TurretError('upstream_protocol_error', 'the upstream sent an invalid response', { cause: e });
  }
  return new TurretError('upstream_connect_failed', 'the upstream could not be reached', { cause: e });
}

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

function hasBody(method: string, status: number): boolean {
  return method !== 'HEAD' && status !== 204 && status !== 304 && !(status >= 100 && status < 200);
}

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

/** What waits for a small response to be out (Forwarding). */
interface SentWatcher {
  watch(res: Exchange['res']): void;
}

function watchSent(f: SentWatcher, res: Exchange['res']): void {
  f.watch(res);
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

/** Quiet time after which the scrubber emits held bytes up to the last line feed (SSE events). */
export const IDLE_FLUSH_MS = 50;

/**
 * The response half: headers scrubbed; the body decoded (when scanned), scrubbed, counted;
 * trailers scrubbed. A body whose Content-Type the operator excluded (`scrub.content_types`)
 * passes as received, compressed and with its Content-Length. An OAuth token endpoint's answer
 * goes through oauth.ts instead (tokens become handles). Not an async function: a failure before
 * anything is sent may throw at once, so callers await it inside their try.
 */
/**
 * What the response half needs of an answer: the upstream client's (upstream-h1.ts), or Node's
 * for a WebSocket handshake refused.
 */
export interface UpstreamAnswer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body as a stream (the upstream client makes it only when asked, for a whole body). */
  readonly body: Readable;
  /** The whole body, when it arrived with its head (then nothing else is read for it). */
  readonly whole?: Buffer | null;
  /** Read once the body has ended. */
  readonly trailers?: Record<string, string | string[] | undefined> | null;
}

export function respond(x: Exchange, upstream: UpstreamAnswer, scrubber: Scrubber, onRedaction: (type: string) => void): Promise<void> {
  return respondTo(x, upstream, scrubber, onRedaction, null) as Promise<void>;
}

/**
 * respond; with `f` (forwardThen), a whole small body is sent with `f` listening for the response's
 * end, and nothing is returned (no promise); any other response returns its promise as respond.
 */
function respondTo(x: Exchange, upstream: UpstreamAnswer, scrubber: Scrubber, onRedaction: (type: string) => void, f: SentWatcher | null): Promise<void> | undefined {
  const { req } = x;
  const { statusCode, headers: upHeaders } = upstream;
  const settings = x.state.policy.settings.scrub;
  const withBody = hasBody(req.method ?? 'GET', statusCode);
  const capture = withBody ? captureFor(x) : undefined;
  const scrubbing = withBody && !scrubber.empty && (capture !== undefined || scansContentType(settings, upHeaders['content-type']));
  // An MCP tools/list answer is rewritten (mcp-filter.ts): decoded first, sent without its length.
  const filter = withBody && x.toolFilter ? toolListFilterStream(upHeaders['content-type'], x.toolFilter) : null;
  const transforming = scrubbing || filter !== null;
  let decode: Transform | null = null;
  try {
    // A transfer coding other than chunked is never relayed (undici leaves it in the bytes), and
    // a body that is scanned must be decodable first (codings.ts).
    if (withBody) checkTransferCoding(upHeaders['transfer-encoding']);
    if (transforming) decode = decoderFor(contentCoding(upHeaders['content-encoding']));
  } catch (e) {
    upstream.body.destroy();
    throw e;
  }
  const count = (d: Redaction): void => {
    x.redactions++;
    onRedaction(d.kind === 'secret' ? 'secret' : d.id);
  };
  // Trailers (RFC 9110 §6.5) are forwarded, scrubbed, when the upstream announced them and the
  // client side is chunked; otherwise they are dropped (never forwarded unscrubbed).
  const announced = upHeaders.trailer === undefined ? NO_NAMES : trailerNames(upHeaders.trailer).filter((k) => cleanName(scrubber, k, count));
  // A 1xx/204 has no content, so no Content-Length either (RFC 9110 §8.6): an upstream that sent
  // one (with bytes after it) must not make the client look for a body.
  const noContent = statusCode === 204 || statusCode < 200;
  // One pass, in place over the fields' own array: a decoded body loses its Content-Encoding, a
  // name that holds a secret is dropped, every value is scrubbed.
  const outHeaders = clientResponseHeaders(upHeaders, !transforming && !noContent);
  let chunked = true;
  let kept = 0;
  for (let i = 0; i < outHeaders.length; i++) {
    const h = outHeaders[i] as [string, string];
    const lk = h[0].toLowerCase();
    if ((decode && lk === 'content-encoding') || !cleanName(scrubber, h[0], count)) continue;
    h[1] = scrubText(scrubber, h[1], count);
    outHeaders[kept++] = h;
    if (lk === 'content-length') chunked = false;
  }
  outHeaders.length = kept;
  if (announced.length > 0 && chunked && withBody) outHeaders.push(['trailer', announced.join(', ')]);
  x.status = statusCode;

  if (capture) return capture.respond(x, upstream.body, decode, outHeaders, scrubber, count);
  const small = withBody && decode === null && filter === null && announced.length === 0 ? smallBodyLength(upHeaders) : null;
  const smallBody: SmallBody | null =
    small === null
      ? null
      : { statusCode, headers: outHeaders, length: small, scrubber: scrubbing ? scrubber : null, maxScan: settings?.maxBodyScan ?? null, count, mapError: smallBodyError };
  // A small body usually arrives in the same read as its head, and the upstream client hands it
  // over whole (no stream is made for it): it goes out now, and the promise the caller awaits is
  // respondSmall's own (no async frame here, docs/benchmarks.md "Seventh pass"). Anything else
  // continues in respondRest.
  if (smallBody !== null) {
    const whole = upstream.whole;
    if (whole !== undefined && whole !== null) {
      if (f === null) return respondSmall(x, { whole }, null, smallBody);
      sendSmall(x, whole, smallBody, f, watchSent);
      return undefined;
    }
    const now = wholeNow(upstream.body);
    if (now !== null) return respondSmall(x, now, upstream.body, smallBody);
  }
  return respondRest(x, upstream, {
    withBody,
    smallBody,
    decode,
    filter,
    scrubbing,
    scrubber,
    maxScan: settings?.maxBodyScan ?? null,
    count,
    announced,
    chunked,
    outHeaders,
  });
}

/** What respondRest takes over from respond (computed there once per response). */
interface RestOfResponse {
  withBody: boolean;
  smallBody: SmallBody | null;
  decode: Transform | null;
  filter: Transform | null;
  scrubbing: boolean;
  scrubber: Scrubber;
  maxScan: number | null;
  count: (d: Redaction) => void;
  announced: readonly string[];
  chunked: boolean;
  outHeaders: Array<[string, string]>;
}

/** No trailer names (the common response): one array for all. */
const NO_NAMES: readonly string[] = [];

/**
 * A header or trailer value, scrubbed. Names and most values repeat between responses: one the
 * scrubber left unchanged is not scanned again by it (clean-strings.ts). Functions of the module,
 * not closures per response.
 */
function scrubText(scrubber: Scrubber, v: string, count: (d: Redaction) => void): string {
  if (knownClean(scrubber, v)) return v;
  const r = scrubber.scrubString(v);
  r.redactions.forEach(count);
  if (r.redactions.length === 0) noteClean(scrubber, v);
  return r.text;
}

/**
 * False when a field *name* holds a secret or token: reflected bytes can be there too, and a
 * scrubbed name would not be a valid token, so such a field is dropped.
 */
function cleanName(scrubber: Scrubber, k: string, count: (d: Redaction) => void): boolean {
  if (knownClean(scrubber, k)) return true;
  const r = scrubber.scrubString(k);
  r.redactions.forEach(count);
  if (r.redactions.length === 0) noteClean(scrubber, k);
  return r.redactions.length === 0;
}

/** One mapping for every small response's failure (no closure per response). */
function smallBodyError(x: Exchange, e: unknown): TurretError {
  return causeOf(x) ?? upstreamError(e);
}

/** The rest of respond: a small body still arriving (prefetch), a body without one, or the streaming path. */
async function respondRest(x: Exchange, upstream: UpstreamAnswer, r: RestOfResponse): Promise<void> {
  const { res } = x;
  const { statusCode } = upstream;
  const body = upstream.body;
  const { withBody, decode, filter, scrubbing, scrubber, count, announced, chunked, outHeaders } = r;
  // The small-body path sends the head with the whole body; a body not all there at once streams
  // instead, so its head is not withheld (relay.ts).
  const early = r.smallBody !== null ? await prefetch(body, IDLE_FLUSH_MS) : null;
  if (r.smallBody !== null && early && !('rest' in early)) {
    await respondSmall(x, early, body, r.smallBody);
    return;
  }
  const rest = early && 'rest' in early ? early.rest : body;
  if (!withBody) {
    res.writeHead(statusCode, outHeaders.flat());
    x.responded = true;
    body.resume();
    res.end();
    return;
  }
  // The head leaves when the body starts, not when the scrubber first releases bytes (relay.ts).
  const gate = new HeadGate(res, statusCode, outHeaders, () => (x.responded = true), IDLE_FLUSH_MS);
  const transforms: Transform[] = [gate.tap()];
  if (decode) transforms.push(decode);
  if (filter) transforms.push(filter);
  if (scrubbing) {
    const max = r.maxScan;
    transforms.push(scrubber.createStream({ onRedaction: count, idleFlushMs: IDLE_FLUSH_MS, ...(max !== null ? { maxScanBytes: max } : {}) }));
  }
  transforms.push(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        x.bytesOut += chunk.length;
        cb(null, chunk);
      },
      flush(cb) {
        // Runs after the upstream body ended (the upstream client has filled in the trailers) and before res ends.
        if (announced.length > 0 && chunked) {
          const tr = Object.entries(upstream.trailers ?? {}).filter(([k]) => announced.includes(k.toLowerCase()));
          if (tr.length > 0) res.addTrailers(tr.map(([k, v]): [string, string] => [k, scrubText(scrubber, String(v), count)]));
        }
        cb();
      },
    }),
  );
  try {
    await pipeline([rest, ...transforms, gate.sink()]);
  } catch (e) {
    gate.stop();
    // The cause is taken before any destroy (which would look like a client close). Nothing
    // reached the client yet: the pipeline stage answers with the error (a 502 with its code).
    // Headers are out: the only honest signal left is to abort the response.
    const err = causeOf(x) ?? upstreamError(e);
    if (gate.sent) res.destroy();
    throw err;
  }
}

function trailerNames(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  const all = (Array.isArray(v) ? v.join(',') : (v ?? '')).split(',').map((t) => t.trim().toLowerCase());
  // Framing and hop-by-hop fields may not be trailers (RFC 9110 §6.5.1).
  return all.filter((t) => /^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(t) && !['content-length', 'transfer-encoding', 'trailer', 'host', 'content-encoding', 'content-type'].includes(t));
}
