/**
 * The response half of forward.ts: headers scrubbed; the body decoded (when scanned), scrubbed,
 * counted; trailers scrubbed, and the mapping of upstream failures to TurretErrors both halves
 * use. forward.ts sends the request and hands the answer here (respond, or respondTo from its
 * callback path); websocket.ts uses respond for a refused handshake.
 */
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { TurretError, isTurretError } from '../../core/errors.js';
import type { Redaction, Scrubber } from '../../scrub/scrubber.js';
import type { Exchange } from './exchange.js';
import { clientResponseHeaders } from './headers.js';
import { toolListFilterStream } from './mcp-filter.js';
import { checkTransferCoding, contentCoding, decoderFor } from './codings.js';
import { scansContentType } from './scrubbing.js';
import { captureFor } from './oauth.js';
import { respondSmall, sendSmall, smallBodyLength, type SmallBody } from './small-body.js';
import { HeadGate, prefetch, wholeNow } from './relay.js';
import { knownClean, noteClean } from '../clean-strings.js';

/** Why the exchange was ended early (client close, timeouts, drain: ending.ts), or null. */
export function causeOf(x: Exchange): TurretError | null {
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

function hasBody(method: string, status: number): boolean {
  return method !== 'HEAD' && status !== 204 && status !== 304 && !(status >= 100 && status < 200);
}

/** What waits for a small response to be out (Forwarding). */
export interface SentWatcher {
  watch(res: Exchange['res']): void;
}

function watchSent(f: SentWatcher, res: Exchange['res']): void {
  f.watch(res);
}

/** Quiet time after which the scrubber emits held bytes up to the last line feed (SSE events). */
export const IDLE_FLUSH_MS = 50;

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

/**
 * The response half: headers scrubbed; the body decoded (when scanned), scrubbed, counted;
 * trailers scrubbed. A body whose Content-Type the operator excluded (`scrub.content_types`)
 * passes as received, compressed and with its Content-Length. An OAuth token endpoint's answer
 * goes through oauth.ts instead (tokens become handles). Not an async function: a failure before
 * anything is sent may throw at once, so callers await it inside their try.
 */
export function respond(x: Exchange, upstream: UpstreamAnswer, scrubber: Scrubber, onRedaction: (type: string) => void): Promise<void> {
  return respondTo(x, upstream, scrubber, onRedaction, null) as Promise<void>;
}

/**
 * respond; with `f` (forwardThen), a whole small body is sent with `f` listening for the response's
 * end, and nothing is returned (no promise); any other response returns its promise as respond.
 */
export function respondTo(x: Exchange, upstream: UpstreamAnswer, scrubber: Scrubber, onRedaction: (type: string) => void, f: SentWatcher | null): Promise<void> | undefined {
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
export function smallBodyError(x: Exchange, e: unknown): TurretError {
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
