/**
 * connect → forward → scrub. The request body streams from the client to undici; the response
 * body streams back through a decoder (gzip/deflate/br, so compressed bodies can be scrubbed)
 * and the scrubber to the client. Nothing is buffered beyond the scrubber's bounded window, so a
 * 1 GB download holds no more memory than a 1 KB one.
 */
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import zlib from 'node:zlib';
import { errors as undiciErrors } from 'undici';
import { TurretError, isTurretError } from '../core/errors.js';
import type { Scrubber } from '../scrub/scrubber.js';
import type { Exchange } from './exchange.js';
import { clientResponseHeaders, DECODABLE } from './headers.js';

/** Map whatever undici or the connector threw to a TurretError (the connector's pass through). */
export function upstreamError(e: unknown): TurretError {
  if (isTurretError(e)) return e;
  if (e instanceof undiciErrors.HeadersTimeoutError || e instanceof undiciErrors.BodyTimeoutError || e instanceof undiciErrors.ConnectTimeoutError) {
    return new TurretError('upstream_timeout', 'the upstream did not answer in time');
  }
  const code = (e as { code?: string }).code ?? '';
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') {
    return new TurretError('upstream_tls_failed', 'the upstream TLS certificate could not be verified', { cause: e });
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return new TurretError('upstream_connect_failed', 'the upstream closed the connection', { cause: e });
  }
  if (code === 'HPE_INVALID_CONSTANT' || code.startsWith('HPE_') || code === 'UND_ERR_RESPONSE_EXCEEDED_MAX_SIZE' || code === 'UND_ERR_HEADERS_OVERFLOW') {
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

function decoderFor(coding: string): Transform | null {
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      return zlib.createGunzip();
    case 'deflate':
      return zlib.createInflate();
    case 'br':
      return zlib.createBrotliDecompress();
    default:
      return null;
  }
}

function hasBody(method: string, status: number): boolean {
  return method !== 'HEAD' && status !== 204 && status !== 304 && !(status >= 100 && status < 200);
}

export async function forward(x: Exchange, scrubber: Scrubber, onRedaction: (type: string) => void): Promise<void> {
  const { req, res } = x;
  const scheme = x.scheme ?? 'https';
  const host = x.host ?? '';
  const port = x.port ?? 443;
  const rule = x.decision?.rule;
  const dispatcher = x.state.upstream.dispatcher(rule?.addressExceptions ?? []);
  const origin = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const bodyExpected = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
  const length = req.headers['content-length'];
  const headers = x.upstreamHeaders.slice();
  if (bodyExpected && length !== undefined) headers.push(['content-length', length]);

  let upstream;
  try {
    upstream = await dispatcher.request({
      origin,
      path: x.path ?? '/',
      method: req.method as 'GET',
      headers: headers.flat(),
      body: bodyExpected ? (req.pipe(counter((n) => (x.bytesIn += n))) as Readable) : undefined,
    });
  } catch (e) {
    throw upstreamError(e);
  }

  const { statusCode, headers: upHeaders, body } = upstream;
  const encodingRaw = upHeaders['content-encoding'];
  const coding = (Array.isArray(encodingRaw) ? encodingRaw.join(',') : (encodingRaw ?? 'identity')).trim().toLowerCase();
  const withBody = hasBody(req.method ?? 'GET', statusCode);
  const transforms: Transform[] = [];
  let decode: Transform | null = null;
  if (withBody && !scrubber.empty && coding !== 'identity' && coding !== '') {
    if (!DECODABLE.has(coding)) {
      body.destroy();
      throw new TurretError('upstream_protocol_error', `the upstream used content coding "${coding.slice(0, 30)}", which cannot be inspected`);
    }
    decode = decoderFor(coding);
  }
  const scrubbing = withBody && !scrubber.empty;
  const outHeaders = clientResponseHeaders(upHeaders, !scrubbing)
    .filter(([k]) => !(decode && k.toLowerCase() === 'content-encoding'))
    .map(([k, v]): [string, string] => {
      const r = scrubber.scrubString(v);
      x.redactions += r.redactions.length;
      r.redactions.forEach((d) => onRedaction(d.kind === 'secret' ? 'secret' : d.id));
      return [k, r.text];
    });
  x.status = statusCode;
  res.writeHead(statusCode, outHeaders.flat());
  x.responded = true;
  if (!withBody) {
    body.resume();
    res.end();
    return;
  }
  if (decode) transforms.push(decode);
  if (scrubbing) {
    transforms.push(
      scrubber.createStream({
        onRedaction: (r) => {
          x.redactions++;
          onRedaction(r.kind === 'secret' ? 'secret' : r.id);
        },
      }),
    );
  }
  transforms.push(counter((n) => (x.bytesOut += n)));
  try {
    await pipeline([body as Readable, ...transforms, res]);
  } catch (e) {
    // Headers are out: the only honest signal left is to abort the response.
    res.destroy();
    throw upstreamError(e);
  }
}
