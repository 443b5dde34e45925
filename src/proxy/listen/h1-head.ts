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

interface State {
  connection: boolean;
  contLen: boolean;
  te: boolean;
  date: boolean;
  trailer: boolean;
  header: string;
}

const RE_CONN_CLOSE = /(?:^|\W)close(?:$|\W)/i;
export const RE_TE_CHUNKED = /(?:^|\W)chunked(?:$|\W)/i;
export const INVALID_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

export function httpError(code: string, message: string, Kind: ErrorConstructor = Error): Error {
  return Object.assign(new Kind(message), { code });
}

let dateCache: string | null = null;
/** The Date field, one string per second (as node:http's utcDate). */
function utcDate(): string {
  if (dateCache === null) {
    const d = new Date();
    dateCache = d.toUTCString();
    setTimeout(() => (dateCache = null), 1000 - d.getMilliseconds()).unref();
  }
  return dateCache;
}

/**
 * node:http's _storeHeader for writeHead's fields (no setHeader store, no removed fields): the head
 * as a string, and the response's framing decided on `m` (chunked, close after it, keep-alive).
 */
export function buildHead(m: HeadState, firstLine: string, headers: Record<string, unknown> | unknown[] | undefined, keepAliveS: number): string {
  const state = { connection: false, contLen: false, te: false, date: false, trailer: false, header: firstLine };
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const e of headers as unknown[][]) processHeader(m, state, e[0] as string, e[1]);
    } else {
      if (headers.length % 2 !== 0) throw httpError('ERR_INVALID_ARG_VALUE', "The argument 'headers' is invalid", TypeError);
      for (let n = 0; n < headers.length; n += 2) processHeader(m, state, headers[n] as string, headers[n + 1]);
    }
  } else if (headers) {
    for (const key in headers) if (Object.hasOwn(headers, key)) processHeader(m, state, key, headers[key]);
  }
  let header = state.header;
  if (m.sendDate && !state.date) header += 'Date: ' + utcDate() + '\r\n';
  if (m.chunkedEncoding && (m.statusCode === 204 || m.statusCode === 304)) {
    m.chunkedEncoding = false;
    m.shouldKeepAlive = false;
  }
  if (!state.connection) {
    if (m.shouldKeepAlive && (state.contLen || m.useChunkedEncodingByDefault)) {
      header += 'Connection: keep-alive\r\n';
      if (keepAliveS > 0 && m.defaultKeepAlive) header += `Keep-Alive: timeout=${keepAliveS}\r\n`;
    } else {
      m._last = true;
      header += 'Connection: close\r\n';
    }
  }
  if (!state.contLen && !state.te) {
    if (!m._hasBody) m.chunkedEncoding = false;
    else if (!m.useChunkedEncodingByDefault) m._last = true;
    else if (!state.trailer && typeof m._contentLength === 'number') header += 'Content-Length: ' + m._contentLength + '\r\n';
    else {
      header += 'Transfer-Encoding: chunked\r\n';
      m.chunkedEncoding = true;
    }
  }
  if (m.chunkedEncoding !== true && state.trailer) throw httpError('ERR_HTTP_TRAILER_INVALID', 'Trailers are invalid with this transfer encoding');
  return header + '\r\n';
}

function processHeader(m: HeadState, state: State, key: string, value: unknown): void {
  validateHeaderName(key);
  const lk = key.length >= 4 && key.length <= 19 ? key.toLowerCase() : '';
  // As node:http: with a Content-Length already set, Content-Disposition is re-read as UTF-8.
  if (lk === 'content-disposition' && m._contentLength) {
    value = Array.isArray(value) ? value.map((v) => Buffer.from(String(v), 'latin1').toString()) : Buffer.from(String(value), 'latin1').toString();
  }
  if (Array.isArray(value)) {
    if (value.length < 2 || lk !== 'cookie') {
      for (const v of value) storeOne(m, state, key, lk, v);
      return;
    }
    value = value.join('; ');
  }
  storeOne(m, state, key, lk, value);
}

function storeOne(m: HeadState, state: State, key: string, lk: string, value: unknown): void {
  validateHeaderValue(key, value as string);
  state.header += key + ': ' + String(value) + '\r\n';
  switch (lk) {
    case 'connection':
      state.connection = true;
      if (RE_CONN_CLOSE.test(String(value))) m._last = true;
      else m.shouldKeepAlive = true;
      break;
    case 'transfer-encoding':
      state.te = true;
      if (RE_TE_CHUNKED.test(String(value))) m.chunkedEncoding = true;
      break;
    case 'content-length':
      state.contLen = true;
      m._contentLength = +String(value);
      break;
    case 'date':
      state.date = true;
      break;
    case 'trailer':
      state.trailer = true;
      break;
    case 'keep-alive':
      m.defaultKeepAlive = false;
      break;
  }
}
