/**
 * Hostile HTTP/1.1 responses for the response-framing fuzz test (test/integration/upstream-fuzz):
 * seeded, so a failing case replays from its seed. Each case combines a status (1xx interims
 * before it too), Content-Length (right, short, long, doubled, garbage), Transfer-Encoding
 * (chunked, mis-cased, stacked with a coding, a coding alone), Content-Encoding (known, unknown,
 * stacked, repeated, mis-cased), a body that holds the secret (encoded with the declared codings
 * where they exist, gzip where they do not, so a relayed body always hides it), corrupt or
 * truncated bodies, trailers, split writes, and an end by FIN or by RST at any byte.
 */
import zlib from 'node:zlib';
import type { RawAnswer } from './raw-upstream.js';

/** mulberry32: small, fast, and the same sequence on every platform. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FuzzCase {
  id: string;
  method: 'GET' | 'HEAD';
  answer: RawAnswer;
  /** What the case declared, for the test's expectations and for failure messages. */
  status: number;
  contentEncoding: string[];
  transferEncoding: string[];
  /** A body was announced on a status/method that has one. */
  bodyExpected: boolean;
  /** The response is complete and well framed (no truncation, reset, corruption, bad framing). */
  clean: boolean;
  describe: string;
}

const STATUSES = [200, 200, 200, 201, 203, 206, 204, 304, 301, 302, 400, 404, 410, 418, 500, 502, 503, 299, 599];
const CODINGS = [
  'gzip',
  'x-gzip',
  'deflate',
  'br',
  'identity',
  'zstd',
  'compress',
  'x-unknown',
  'GZIP',
  'Gzip',
  'BR',
  'gzip, gzip',
  'identity, gzip',
  'gzip, br',
  'deflate,gzip',
  ' gzip ',
  'gzip,',
  '*',
];
const TRANSFERS = ['chunked', 'chunked', 'Chunked', 'CHUNKED', 'gzip, chunked', 'gzip', 'deflate', 'identity', 'chunked, chunked', 'x-custom, chunked', 'br'];
const INTERIMS = ['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 102 Processing\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n'];

function encode(coding: string, body: Buffer): Buffer | null {
  switch (coding.trim().toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return zlib.gzipSync(body);
    case 'deflate':
      return zlib.deflateSync(body);
    case 'br':
      return zlib.brotliCompressSync(body);
    case 'identity':
    case '':
      return body;
    default:
      return null;
  }
}

export function fuzzCase(seed: number, index: number, secret: string): FuzzCase {
  const r = prng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)] as T;
  const chance = (p: number): boolean => r() < p;
  const id = `${seed}-${index}`;
  const method = chance(0.12) ? 'HEAD' : 'GET';
  const status = pick(STATUSES);
  const notes: string[] = [`${method} ${status}`];
  let clean = true;

  // Body: the secret in raw, base64 and percent forms among filler (the scrubber must find each).
  const filler = 'x'.repeat(Math.floor(r() * 3000));
  let body: Buffer = Buffer.from(`a ${secret} b ${Buffer.from(secret).toString('base64')} c ${encodeURIComponent(secret)} ${filler} end\n`);

  // Content-Encoding: none, one, a list, or several header lines.
  const ce: string[] = [];
  if (chance(0.55)) {
    ce.push(pick(CODINGS));
    if (chance(0.15)) ce.push(pick(CODINGS));
  }
  const declared = ce
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  // Codings apply in the order listed; one that has no encoder is stood in for by gzip.
  for (const c of declared) body = encode(c, body) ?? zlib.gzipSync(body);
  if (declared.length > 0) notes.push(`CE ${JSON.stringify(ce)}`);
  if (chance(0.08) && body.length > 20) {
    body = Buffer.from(body);
    for (let k = 0; k < 4; k++) {
      const j = Math.floor(r() * body.length);
      body[j] = (body[j] ?? 0) ^ 0x5a;
    }
    notes.push('corrupt');
    clean = false;
  }

  // Transfer-Encoding and its framing.
  const te: string[] = chance(0.45) ? [pick(TRANSFERS)] : [];
  if (te.length > 0 && chance(0.1)) te.push(pick(TRANSFERS));
  const teList = te
    .flatMap((v) => v.split(','))
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v !== '');
  const chunked = teList.at(-1) === 'chunked';
  for (const c of teList.filter((c) => c !== 'chunked')) body = encode(c, body) ?? zlib.gzipSync(body);
  if (te.length > 0) notes.push(`TE ${JSON.stringify(te)}`);
  if (teList.length > 0 && teList.some((c) => c !== 'chunked')) clean = false;
  if (teList.filter((c) => c === 'chunked').length > 1) clean = false;

  const fields: string[] = [];
  for (const v of ce) fields.push(`${chance(0.2) ? 'content-ENCODING' : 'Content-Encoding'}: ${v}`);
  for (const v of te) fields.push(`Transfer-Encoding: ${v}`);
  fields.push(`Content-Type: ${pick(['text/plain', 'application/json', 'application/octet-stream', 'text/html; charset=utf-8'])}`);
  fields.push(`X-Echo: ${secret}`);
  let payload: Buffer;
  let trailers = false;
  if (chunked) {
    const parts: Buffer[] = [];
    for (let i = 0; i < body.length;) {
      const n = 1 + Math.floor(r() * 700);
      const piece = body.subarray(i, i + n);
      const ext = chance(0.1) ? ';ext=1' : '';
      parts.push(Buffer.from(`${piece.length.toString(16)}${ext}\r\n`), piece, Buffer.from('\r\n'));
      i += n;
    }
    if (chance(0.05)) {
      parts.push(Buffer.from('zz\r\n'));
      notes.push('bad chunk size');
      clean = false;
    }
    trailers = chance(0.3);
    if (trailers) fields.push('Trailer: X-Checksum');
    parts.push(Buffer.from(trailers ? `0\r\nX-Checksum: ${secret}\r\n\r\n` : '0\r\n\r\n'));
    payload = Buffer.concat(parts);
    if (trailers) notes.push('trailers');
  } else payload = body;

  // Content-Length: absent, right, wrong, doubled or garbage (also next to Transfer-Encoding).
  // Next to Transfer-Encoding, Content-Length is a protocol error undici refuses; keep it rarer.
  const cl = te.length > 0 && chance(0.7) ? 1 : r();
  if (cl < 0.35) {
    fields.push(`Content-Length: ${payload.length}`);
    notes.push('CL');
  } else if (cl < 0.42) {
    fields.push(`Content-Length: ${Math.max(0, payload.length - 1 - Math.floor(r() * 10))}`);
    notes.push('CL short');
    clean = false;
  } else if (cl < 0.49) {
    fields.push(`Content-Length: ${payload.length + 1 + Math.floor(r() * 100)}`);
    notes.push('CL long');
    clean = false;
  } else if (cl < 0.53) {
    fields.push(`Content-Length: ${payload.length}`, `Content-Length: ${payload.length}`);
    notes.push('CL twice');
  } else if (cl < 0.57) {
    fields.push(`Content-Length: ${payload.length}, ${payload.length + 5}`);
    notes.push('CL list');
    clean = false;
  } else if (cl < 0.6) {
    fields.push(`Content-Length: ${pick(['abc', '-1', '0x10', '1e3', ''])}`);
    notes.push('CL garbage');
    clean = false;
  }
  if (chance(0.3)) fields.push('Connection: close');
  if (te.length > 0 && fields.some((f) => f.startsWith('Content-Length'))) clean = false;

  const statusLine = chance(0.04)
    ? pick(['HTTP/1.0 200 OK', 'HTTP/1.1 200', 'HTTP/1.1 2000 Odd', 'HTTP/2 200 OK', 'HTTP/1.1 200 OK\r\nX-Folded: a\r\n b'])
    : `HTTP/1.1 ${status} Status`;
  if (!statusLine.startsWith(`HTTP/1.1 ${status}`)) {
    notes.push(`status line ${JSON.stringify(statusLine)}`);
    clean = false;
  }
  const interim = chance(0.15) ? [pick(INTERIMS)] : [];
  if (interim.length > 0) notes.push('1xx');
  const head = Buffer.from(`${interim.join('')}${statusLine}\r\n${fields.join('\r\n')}\r\n\r\n`, 'latin1');
  let bytes = Buffer.concat([head, method === 'HEAD' ? Buffer.alloc(0) : payload]);

  // Truncation: after the head, or anywhere in the body; then FIN or RST.
  const end = r();
  let close: RawAnswer['close'] = chance(0.2) ? 'reset' : 'end';
  if (end < 0.08) {
    bytes = bytes.subarray(0, head.length);
    close = 'reset';
    notes.push('reset after head');
  } else if (end < 0.16 && bytes.length > head.length + 1) {
    bytes = bytes.subarray(0, head.length + Math.floor(r() * (bytes.length - head.length)));
    notes.push('truncated');
  } else if (end < 0.19) {
    bytes = bytes.subarray(0, Math.floor(r() * head.length));
    notes.push('cut in head');
  }
  if (bytes.length < head.length + payload.length && method === 'GET') clean = false;
  if (close === 'reset') {
    notes.push('RST');
    clean = false;
  }
  // Split into writes at random points (a secret or a chunk line may be cut anywhere).
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length;) {
    const n = 1 + Math.floor(r() * (chance(0.5) ? 64 : 4096));
    parts.push(bytes.subarray(i, i + n));
    i += n;
  }
  const bodyExpected = method === 'GET' && status !== 204 && status !== 304;
  return {
    id,
    method,
    answer: { parts, close },
    status,
    contentEncoding: declared.map((c) => c.toLowerCase()),
    transferEncoding: teList,
    bodyExpected,
    clean,
    describe: notes.join(', '),
  };
}
