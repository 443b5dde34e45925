/**
 * The small-body path of the response: an identity body with a Content-Length of at most
 * SMALL_BODY_MAX bytes is read whole, scrubbed in one call and written with its (new) length in
 * one write together with the head. Against the streaming path (stream.pipeline, a scrub
 * Transform, a counting Transform, chunked framing) this saves the per-response stream machinery
 * and a second TLS record, which were most of a small request's CPU.
 *
 * What does not change: every byte scanned is scanned by the same scrubber (scrubBuffer is the
 * streaming engine's final pass, which sees the whole body at once); `scrub.max_body_scan` is
 * honoured; a body that fails before its end is a clean error answer (no head was sent yet), and
 * a client that goes away before the response is out fails the exchange as the pipeline did.
 */
import type { Readable } from 'node:stream';
import { TurretError } from '../../core/errors.js';
import type { Redaction, Scrubber } from '../../scrub/scrubber.js';
import type { Exchange } from './exchange.js';

export const SMALL_BODY_MAX = 64 * 1024;

/** The body length when the small-body path applies to these upstream headers, else null. */
export function smallBodyLength(headers: Record<string, string | string[] | undefined>): number | null {
  if (headers['transfer-encoding'] !== undefined) return null;
  const cl = headers['content-length'];
  if (typeof cl !== 'string' || !/^\d{1,6}$/.test(cl)) return null;
  const n = Number(cl);
  return n <= SMALL_BODY_MAX ? n : null;
}

/**
 * Resolves when the response is handed to the socket; when the client went first, destroys the
 * response and rejects with `mapError`'s error. Plain on()/off() pairs (each event fires at most
 * once, and each listener removes the other): no once() wrappers per response.
 */
function sent(x: Exchange, mapError: SmallBody['mapError']): Promise<void> {
  const res = x.res;
  return new Promise((resolve, reject) => {
    const onFinish = (): void => {
      res.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      res.off('finish', onFinish);
      if (res.writableFinished) return resolve();
      res.destroy();
      reject(mapError(x, Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })));
    };
    res.on('finish', onFinish).on('close', onClose);
  });
}

export interface SmallBody {
  statusCode: number;
  /** Client response headers (scrubbed); any Content-Length in them is replaced. */
  headers: Array<[string, string]>;
  length: number;
  /** Null when the body's type is not scanned. */
  scrubber: Scrubber | null;
  maxScan: number | null;
  count: (r: Redaction) => void;
  /** The same mapping the streaming path applies to a failed body or client (one function for every response). */
  mapError: (x: Exchange, e: unknown) => TurretError;
}

/**
 * `got`: the whole body, or how it failed before its end (relay.ts prefetch); `body` is its source
 * (null when the upstream client handed the body over whole: nothing is left to stop).
 * Not an async function: what fails before anything is sent throws at once (the callers await it
 * inside their try), and the promise returned is the one that waits for the response to be out,
 * so a small response costs one promise here, not three (docs/benchmarks.md "Seventh pass").
 */
export function respondSmall(x: Exchange, got: { whole: Buffer } | { failed: Error }, body: Readable | null, o: SmallBody): Promise<void> {
  const out = smallOut(x, got, body, o);
  writeSmallHead(x, o, out);
  const done = sent(x, o.mapError);
  x.res.end(out);
  return done;
}

/**
 * respondSmall for a caller that waits with listeners of its own rather than a promise (forward.ts,
 * a request without a body): `watch` is called once the head is written and before the body
 * leaves, to listen for the response's 'finish' and 'close'.
 */
export function sendSmall<W>(x: Exchange, whole: Buffer, o: SmallBody, watcher: W, watch: (w: W, res: Exchange['res']) => void): void {
  const out = smallOut(x, { whole }, null, o);
  writeSmallHead(x, o, out);
  watch(watcher, x.res);
  x.res.end(out);
}

/** The body to send: checked against its length and scrubbed; a failure throws `mapError`'s error (nothing was sent). */
function smallOut(x: Exchange, got: { whole: Buffer } | { failed: Error }, body: Readable | null, o: SmallBody): Buffer {
  try {
    if ('failed' in got) throw got.failed;
    const buf = got.whole;
    // llhttp holds the upstream to its Content-Length, so this is a second check: should it ever
    // differ, it is the upstream's protocol fault, not an unreachable host.
    if (buf.length !== o.length) throw new TurretError('upstream_protocol_error', 'the upstream sent an invalid response (its body length differs from its Content-Length)');
    if (!o.scrubber || buf.length === 0) return buf;
    const scan = o.maxScan !== null && buf.length > o.maxScan ? buf.subarray(0, o.maxScan) : buf;
    const r = o.scrubber.scrubBuffer(scan);
    r.redactions.forEach(o.count);
    return scan === buf ? r.buf : Buffer.concat([r.buf, buf.subarray(scan.length)]);
  } catch (e) {
    // Nothing was sent: the pipeline's fail() answers with the error's code and status.
    body?.destroy();
    throw o.mapError(x, e);
  }
}

/** The head, with the body's (new) length; the exchange counts the body as sent. */
function writeSmallHead(x: Exchange, o: SmallBody, out: Buffer): void {
  // Node's flat [name, value, …] form, built in one pass; only a name of Content-Length's length
  // is lower-cased to compare.
  const headers: string[] = [];
  for (const [k, v] of o.headers) if (k.length !== 14 || k.toLowerCase() !== 'content-length') headers.push(k, v);
  headers.push('content-length', String(out.length));
  x.res.writeHead(o.statusCode, headers);
  x.responded = true;
  x.bytesOut += out.length;
}
