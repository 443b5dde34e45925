/**
 * The outbound secret check. An agent is meant to hold handles, never secret values; one that has
 * a value anyway (read from a file, pasted into a prompt, echoed by a careless service) must not
 * send it anywhere. Every request is checked as the agent sent it — before injection, so what
 * Turret itself puts in is never seen — for every known secret value in every form the scrubber
 * recognises (raw in any ASCII case, base64/base64url incl. inside `user:secret`, percent, JSON,
 * hex, UTF-16, HTML; scrub/encodings.ts):
 *
 *  - the request target (absolute URL or origin-form path and query) and the CONNECT authority;
 *  - every header name and value except `Proxy-Authorization` (consumed by Turret, never sent);
 *  - the body, as it streams: the check runs before anything is sent upstream and holds back the
 *    last bytes that could still begin a secret (the scrubber's window), so **no byte of a found
 *    secret ever leaves**; on a find the upstream request is aborted mid-body (the upstream sees
 *    a truncated body and a reset, never a complete request) and the record says how many body
 *    bytes had been sent;
 *  - a compressed body (`Content-Encoding: gzip`, `x-gzip`, `deflate`, `br`) is read whole up to
 *    the buffered-body limit, decoded (bounded) and checked before any of it is sent; a larger
 *    one is 413 `body_too_large`, any other coding (or several) 415 `body_encoding_unsupported`;
 *    `aws-chunked` framing is checked as it streams, like an identity body.
 *
 * A find is 403 `secret_in_request`, whichever host the request goes to, with an alert in the
 * audit record naming the secret (never its value) and `turret_outbound_secret_blocked_total`.
 * Not checked: WebSocket messages after the upgrade, and opaque (passthrough) tunnels.
 */
import { Transform } from 'node:stream';
import zlib from 'node:zlib';
import { TurretError } from '../../core/errors.js';
import type { Scrubber } from '../../scrub/scrubber.js';
import { readBody } from '../../secrets/body.js';
import type { Readable } from 'node:stream';
import { requestHasBody, type BodyPlan } from '../../secrets/body.js';
import type { Exchange } from './exchange.js';
import { knownClean, knownCleanPair, noteClean, noteCleanPair } from '../clean-strings.js';

export interface OutboundFind {
  secret: string;
  where: string;
}

function refusal(f: OutboundFind, extra = ''): TurretError {
  return new TurretError('secret_in_request', `${f.where} carries the value of secret ${f.secret}; send a handle (turret env), never the value${extra}`);
}

/** The first known secret in `text` (latin1: one char per byte, as Node decodes heads), or null. */
export function findSecret(known: Scrubber, text: string): string | null {
  if (known.empty || text.length === 0 || knownClean(known, text)) return null;
  const id = known.scrubBuffer(Buffer.from(text, 'latin1')).redactions[0]?.id ?? null;
  // Targets and header lines repeat between requests: one found clean is not scanned again by
  // this detector (clean-strings.ts; a detector for other secret values starts empty). The
  // detector has known values only, no token patterns: a header with a handle (`Bearer trt_…`,
  // sent again on every request of an agent that uses one) is kept too.
  if (id === null) noteClean(known, text, false);
  return id;
}

/** `%XX` → the byte (as a latin1 char); anything else as it is. */
function percentDecode(s: string): string {
  // Most targets hold no '%': no regular-expression pass for them (the result is `s` either way).
  if (!s.includes('%')) return s;
  return s.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
}

function found<C>(onFind: (f: OutboundFind, ctx: C) => void, ctx: C, where: string, secret: string): never {
  const f = { secret, where };
  onFind(f, ctx);
  throw refusal(f);
}

/**
 * Target and headers as received; throws `secret_in_request` with the find recorded by `onFind`
 * (given `ctx`: the pipeline passes one function and its exchange, not a closure per request).
 */
export function checkHead<C>(known: Scrubber, url: string, rawHeaders: readonly string[], onFind: (f: OutboundFind, ctx: C) => void, ctx?: C): void {
  if (known.empty) return;
  // The scrubber's percent forms escape every reserved byte; an agent may also escape letters
  // (`%66ake…`) or mix: the target is checked decoded too, up to three layers (`%2566…`).
  let target = url;
  for (let i = 0; i < 4; i++) {
    const secret = findSecret(known, target);
    if (secret !== null) found(onFind, ctx as C, 'the request target', secret);
    const next = percentDecode(target);
    if (next === target) break;
    target = next;
  }
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    const value = rawHeaders[i + 1] ?? '';
    // A line known clean costs two lookups, not a string built and hashed (clean-strings.ts).
    if (knownCleanPair(known, name, value)) continue;
    if (name.length === 19 && name.toLowerCase() === 'proxy-authorization') continue;
    const line = `${name}: ${value}`;
    const secret = known.scrubBuffer(Buffer.from(line, 'latin1')).redactions[0]?.id ?? null;
    // Kept clean by name and value, as findSecret keeps a string (no token patterns: a header
    // with a handle is kept too).
    if (secret === null) noteCleanPair(known, name, value);
    // The header's description (a replace and a slice) is made for a find only, not for every clean line.
    if (secret !== null) found(onFind, ctx as C, `the request header ${name.replace(/[^\x21-\x7e]/g, '?').slice(0, 60)}`, secret);
  }
}

/** The CONNECT authority (a secret as a subdomain leaks through DNS before any request). */
export function checkAuthority(known: Scrubber, authority: string, onFind: (f: OutboundFind) => void): void {
  const secret = findSecret(known, authority);
  if (secret === null) return;
  const f = { secret, where: 'the CONNECT authority' };
  onFind(f);
  throw refusal(f);
}

/**
 * The streams for an identity body: the check emits only bytes that cannot be part of a secret
 * (output equals input: there is no token pattern, and a find fails before anything is emitted),
 * then a counter of what passed. On a find the stream fails with `secret_in_request`.
 */
export function bodyCheck(known: Scrubber, onFind: (f: OutboundFind) => void): { streams: Transform[]; sent(): number; refusal(f: OutboundFind): TurretError } {
  let passed = 0;
  const check = known.createStream({
    onRedaction: (r) => {
      const f = { secret: r.id, where: 'the request body' };
      onFind(f);
      throw refusal(f);
    },
  });
  const count = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      passed += chunk.length;
      cb(null, chunk);
    },
  });
  return {
    streams: [check, count],
    sent: () => passed,
    refusal: (f) => refusal(f, `; the upstream request was aborted after ${passed} body bytes, before any byte of the secret`),
  };
}

const DECODERS: Record<string, (b: Buffer, max: number) => Buffer> = {
  gzip: (b, max) => zlib.gunzipSync(b, { maxOutputLength: max }),
  'x-gzip': (b, max) => zlib.gunzipSync(b, { maxOutputLength: max }),
  deflate: (b, max) => {
    try {
      return zlib.inflateSync(b, { maxOutputLength: max });
    } catch {
      return zlib.inflateRawSync(b, { maxOutputLength: max }); // raw deflate, as some clients send
    }
  },
  br: (b, max) => zlib.brotliDecompressSync(b, { maxOutputLength: max }),
};

/**
 * A compressed body: read whole (at most `limit` bytes), decode (at most 8 × `limit`), check the
 * encoded and the decoded bytes, and return the encoded bytes to send as they came.
 */
export async function checkCompressedBody(known: Scrubber, coding: string, body: Readable, limit: number, onFind: (f: OutboundFind) => void): Promise<Buffer> {
  const decode = DECODERS[coding];
  if (!decode)
    throw new TurretError('body_encoding_unsupported', `the request body is ${coding.slice(0, 30)}-encoded; only gzip, deflate and br bodies can be checked for secrets`);
  const raw = await readBody(body, limit);
  let plain: Buffer;
  try {
    plain = decode(raw, limit * 8);
  } catch (e) {
    const tooBig = (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || /larger than/i.test(String((e as Error).message));
    if (tooBig) throw new TurretError('body_too_large', `the ${coding} request body decodes to more than ${limit * 8} bytes`);
    throw new TurretError('bad_request', `the request body is not valid ${coding}`);
  }
  for (const [what, buf] of [
    ['', plain],
    [` (${coding}-encoded bytes)`, raw],
  ] as const) {
    const secret = known.scrubBuffer(buf).redactions[0]?.id;
    if (secret !== undefined) {
      const f = { secret, where: `the request body${what}` };
      onFind(f);
      throw refusal(f, '; nothing of the body was sent');
    }
  }
  return raw;
}

/**
 * Arrange the body check for this exchange's body plan: a body already buffered (SigV4) is
 * checked at once, a compressed one is read and checked whole, an identity one is checked as it
 * streams (the check goes first, before the handle scan or injection sees the bytes).
 */
export function planBodyCheck(x: Exchange, plan: BodyPlan, known: Scrubber, onFind: (f: OutboundFind) => void, limit: number): void | Promise<void> {
  // No promise unless a compressed body has to be read first (a GET has no body at all).
  if (known.empty || !requestHasBody(x.req.headers)) return;
  if (plan.buffered) {
    const secret = known.scrubBuffer(plan.buffered).redactions[0]?.id;
    if (secret === undefined) return;
    const f = { secret, where: 'the request body' };
    onFind(f);
    throw refusal(f, '; nothing of the body was sent');
  }
  // `aws-chunked` (S3 streaming uploads) frames the plain bytes with signature lines: readable as
  // it streams (a secret split across two of its chunks is the one spelling not found).
  const codings = String(x.req.headers['content-encoding'] ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity' && c !== 'aws-chunked');
  const coding = codings.join(', ');
  if (coding !== '') {
    return checkCompressedBody(known, coding, x.req, limit, onFind).then((buffered) => {
      plan.buffered = buffered;
      x.bytesIn += buffered.length;
    });
  }
  const check = bodyCheck(known, onFind);
  plan.transforms.unshift(...check.streams);
  x.outbound = check;
}
