/**
 * The head of a response written by h1-response.ts, built as node:http's ServerResponse builds it
 * (lib/_http_outgoing.js of Node 20: _storeHeader, processHeader, matchHeader), so a client sees
 * the same bytes: the status line, the fields in the order given, checked by node:http's own
 * validateHeaderName / validateHeaderValue, then Date, then Connection (and Keep-Alive), then the
 * framing node:http adds for a body of unknown length (chunked, or close-delimited for HTTP/1.0).
 */
import { validateHeaderName, validateHeaderValue } from 'node:http';

/** The response's fields the head reads and decides. */
export interface HeadState {
  statusCode: number;
  shouldKeepAlive: boolean;
  sendDate: boolean;
  chunkedEncoding: boolean;
  useChunkedEncodingByDefault: boolean;
  _last: boolean;
  _hasBody: boolean;
  _contentLength: number | null;
  defaultKeepAlive: boolean;
}

/** Which of the fields the head adds itself were given (a bit each): no state object per head. */
const SEEN_CONNECTION = 1;
const SEEN_LENGTH = 2;
const SEEN_TE = 4;
const SEEN_DATE = 8;
const SEEN_TRAILER = 16;

const RE_CONN_CLOSE = /(?:^|\W)close(?:$|\W)/i;
export const RE_TE_CHUNKED = /(?:^|\W)chunked(?:$|\W)/i;
export const INVALID_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

export function httpError(code: string, message: string, Kind: ErrorConstructor = Error): Error {
  return Object.assign(new Kind(message), { code });
}

let dateCache: string | null = null;
/** The Date field's line, one string per second (as node:http's utcDate). */
function dateLine(): string {
  if (dateCache === null) {
    const d = new Date();
    dateCache = 'Date: ' + d.toUTCString() + '\r\n';
    setTimeout(() => (dateCache = null), 1000 - d.getMilliseconds()).unref();
  }
  return dateCache;
}

let keepAliveLinesS = -1;
let keepAliveLinesCache = '';
/** `Connection: keep-alive` and its `Keep-Alive: timeout=N`, one string per N (the server's setting). */
function keepAliveLines(keepAliveS: number): string {
  if (keepAliveS !== keepAliveLinesS) {
    keepAliveLinesCache = `Connection: keep-alive\r\nKeep-Alive: timeout=${keepAliveS}\r\n`;
    keepAliveLinesS = keepAliveS;
  }
  return keepAliveLinesCache;
}

/**
 * node:http's _storeHeader for writeHead's fields (no setHeader store, no removed fields): the head
 * as a string, and the response's framing decided on `m` (chunked, close after it, keep-alive).
 */
export function buildHead(m: HeadState, firstLine: string, headers: Record<string, unknown> | unknown[] | undefined, keepAliveS: number): string {
  let header = firstLine;
  let seen = 0;
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const e of headers as unknown[][]) {
        const key = e[0] as string;
        const lines = fieldLines(m, key, e[1]);
        header += lines;
        if (lines !== '') seen |= seenBit(key);
      }
    } else {
      if (headers.length % 2 !== 0) throw httpError('ERR_INVALID_ARG_VALUE', "The argument 'headers' is invalid", TypeError);
      for (let n = 0; n < headers.length; n += 2) {
        const key = headers[n] as string;
        const lines = fieldLines(m, key, headers[n + 1]);
        header += lines;
        if (lines !== '') seen |= seenBit(key);
      }
    }
  } else if (headers) {
    for (const key in headers) {
      if (!Object.hasOwn(headers, key)) continue;
      const lines = fieldLines(m, key, headers[key]);
      header += lines;
      if (lines !== '') seen |= seenBit(key);
    }
  }
  if (m.sendDate && (seen & SEEN_DATE) === 0) header += dateLine();
  if (m.chunkedEncoding && (m.statusCode === 204 || m.statusCode === 304)) {
    m.chunkedEncoding = false;
    m.shouldKeepAlive = false;
  }
  const contLen = (seen & SEEN_LENGTH) !== 0;
  if ((seen & SEEN_CONNECTION) === 0) {
    if (m.shouldKeepAlive && (contLen || m.useChunkedEncodingByDefault)) {
      header += keepAliveS > 0 && m.defaultKeepAlive ? keepAliveLines(keepAliveS) : 'Connection: keep-alive\r\n';
    } else {
      m._last = true;
      header += 'Connection: close\r\n';
    }
  }
  const trailer = (seen & SEEN_TRAILER) !== 0;
  if (!contLen && (seen & SEEN_TE) === 0) {
    if (!m._hasBody) m.chunkedEncoding = false;
    else if (!m.useChunkedEncodingByDefault) m._last = true;
    else if (!trailer && typeof m._contentLength === 'number') header += 'Content-Length: ' + m._contentLength + '\r\n';
    else {
      header += 'Transfer-Encoding: chunked\r\n';
      m.chunkedEncoding = true;
    }
  }
  if (m.chunkedEncoding !== true && trailer) throw httpError('ERR_HTTP_TRAILER_INVALID', 'Trailers are invalid with this transfer encoding');
  return header + '\r\n';
}

/**
 * The field lines of one field given to writeHead (node:http's processHeader), checked; its framing
 * decided on `m`. '' for an empty array of values (no line, so the field counts as not given).
 */
function fieldLines(m: HeadState, key: string, value: unknown): string {
  validateHeaderName(key);
  const lk = key.length >= 4 && key.length <= 19 ? key.toLowerCase() : '';
  // As node:http: with a Content-Length already set, Content-Disposition is re-read as UTF-8.
  if (lk === 'content-disposition' && m._contentLength) {
    value = Array.isArray(value) ? value.map((v) => Buffer.from(String(v), 'latin1').toString()) : Buffer.from(String(value), 'latin1').toString();
  }
  if (Array.isArray(value)) {
    if (value.length < 2 || lk !== 'cookie') {
      let lines = '';
      for (const v of value) lines += fieldLine(m, key, lk, v);
      return lines;
    }
    value = value.join('; ');
  }
  return fieldLine(m, key, lk, value);
}

/** One field line (node:http's storeHeader and matchHeader). */
function fieldLine(m: HeadState, key: string, lk: string, value: unknown): string {
  validateHeaderValue(key, value as string);
  switch (lk) {
    case 'connection':
      if (RE_CONN_CLOSE.test(String(value))) m._last = true;
      else m.shouldKeepAlive = true;
      break;
    case 'transfer-encoding':
      if (RE_TE_CHUNKED.test(String(value))) m.chunkedEncoding = true;
      break;
    case 'content-length':
      m._contentLength = +String(value);
      break;
    case 'keep-alive':
      m.defaultKeepAlive = false;
      break;
  }
  return key + ': ' + String(value) + '\r\n';
}

/**
 * The bit of a field the head decides on (`key` already checked as a token). A name of another
 * length is none of them, and is not lower-cased to find out.
 */
function seenBit(key: string): number {
  const n = key.length;
  if (n !== 4 && n !== 7 && n !== 10 && n !== 14 && n !== 17) return 0;
  switch (key.toLowerCase()) {
    case 'connection':
      return SEEN_CONNECTION;
    case 'content-length':
      return SEEN_LENGTH;
    case 'transfer-encoding':
      return SEEN_TE;
    case 'date':
      return SEEN_DATE;
    case 'trailer':
      return SEEN_TRAILER;
    default:
      return 0;
  }
}
