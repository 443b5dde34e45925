/**
 * A deliberately strict HTTP/1.1 message parser for tests: what Turret writes (to an upstream or
 * back to a client) must be the boring, canonical form of a message. Anything a lenient parser
 * would have to guess about is reported as a problem: bare CR or LF, obs-fold, a header name that
 * is not a token, control characters in values, duplicate or non-numeric Content-Length,
 * Transfer-Encoding beside Content-Length or other than exactly "chunked", more or fewer than
 * one Host in a request, malformed chunks, framing fields in trailers.
 */

export interface WireMessage {
  startLine: string;
  /** Header fields in order, names as sent. */
  headers: Array<[string, string]>;
  /** The decoded body (chunks joined). */
  body: Buffer;
  framing: 'none' | 'length' | 'chunked' | 'close';
  trailers: Array<[string, string]>;
  /** Status of a response (0 for requests). */
  status: number;
}

export type WireResult = { state: 'complete'; msg: WireMessage; consumed: number } | { state: 'partial' } | { state: 'invalid'; problem: string };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Field values: VCHAR, obs-text, SP and HTAB; nothing else (RFC 9110 §5.5).
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\/[^\x00-\x20\x7f]*|\*) HTTP\/1\.1$/;
const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d)(?: [^\x00-\x08\x0a-\x1f\x7f]*)?$/;

export function header(msg: { headers: Array<[string, string]> }, name: string): string[] {
  return msg.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
}

function fieldLines(lines: string[], where: string): Array<[string, string]> | string {
  const out: Array<[string, string]> = [];
  for (const line of lines) {
    if (line.includes('\r') || line.includes('\n')) return `bare CR or LF in the ${where}`;
    if (/^[ \t]/.test(line)) return `obs-fold in the ${where}`;
    const c = line.indexOf(':');
    if (c <= 0) return `field line without a name in the ${where}: ${JSON.stringify(line.slice(0, 60))}`;
    const name = line.slice(0, c);
    if (!TOKEN.test(name)) return `field name is not a token in the ${where}: ${JSON.stringify(name.slice(0, 60))}`;
    const value = line.slice(c + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (BAD_VALUE.test(value)) return `control character in field ${name} in the ${where}`;
    out.push([name, value]);
  }
  return out;
}

/** Parse one chunked body starting at `at`; returns the body, trailers and end offset. */
function chunked(buf: Buffer, at: number): { body: Buffer; trailers: Array<[string, string]>; end: number } | 'partial' | string {
  const parts: Buffer[] = [];
  let i = at;
  for (;;) {
    const eol = buf.indexOf('\r\n', i);
    if (eol < 0) return buf.length - i > 1024 ? 'chunk-size line too long' : 'partial';
    const line = buf.subarray(i, eol).toString('latin1');
    if (!/^[0-9a-fA-F]{1,15}(;[!#$%&'*+.^_`|~0-9A-Za-z=-]*)?$/.test(line)) return `bad chunk-size line ${JSON.stringify(line.slice(0, 40))}`;
    const size = parseInt(line, 16);
    if (size === 0) {
      i = eol + 2;
      const lines: string[] = [];
      for (;;) {
        const e = buf.indexOf('\r\n', i);
        if (e < 0) return 'partial';
        const l = buf.subarray(i, e).toString('latin1');
        i = e + 2;
        if (l === '') break;
        lines.push(l);
      }
      const trailers = fieldLines(lines, 'trailer section');
      if (typeof trailers === 'string') return trailers;
      const framing = trailers.find(([k]) => ['content-length', 'transfer-encoding', 'host', 'trailer'].includes(k.toLowerCase()));
      if (framing) return `framing/routing field ${framing[0]} in a trailer`;
      return { body: Buffer.concat(parts), trailers, end: i };
    }
    if (eol + 2 + size + 2 > buf.length) return 'partial';
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    if (buf[eol + 2 + size] !== 0x0d || buf[eol + 3 + size] !== 0x0a) return 'chunk data is not followed by CRLF';
    i = eol + 2 + size + 2;
  }
}

/**
 * Parse one message at the start of `buf`. `method` is the request method a response answers
 * (HEAD and CONNECT responses have no body); `closed` says the peer closed, which completes a
 * close-delimited response body.
 */
export function parseMessage(buf: Buffer, o: { kind: 'request' | 'response'; method?: string; closed?: boolean }): WireResult {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) {
    const text = buf.toString('latin1');
    if (/(^|[^\r])\n/.test(text) || /\r(?!\n|$)/.test(text)) return { state: 'invalid', problem: 'bare CR or LF in the head' };
    return buf.length > 128 * 1024 ? { state: 'invalid', problem: 'head too long' } : { state: 'partial' };
  }
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const startLine = lines[0] ?? '';
  if (startLine.includes('\n') || startLine.includes('\r')) return { state: 'invalid', problem: 'bare CR or LF in the start line' };
  let status = 0;
  if (o.kind === 'request') {
    if (!REQUEST_LINE.test(startLine)) return { state: 'invalid', problem: `bad request line ${JSON.stringify(startLine.slice(0, 80))}` };
  } else {
    const m = STATUS_LINE.exec(startLine);
    if (!m) return { state: 'invalid', problem: `bad status line ${JSON.stringify(startLine.slice(0, 80))}` };
    status = Number(m[1]);
  }
  const headers = fieldLines(lines.slice(1), 'header section');
  if (typeof headers === 'string') return { state: 'invalid', problem: headers };
  const msg = { headers };
  const cl = header(msg, 'content-length');
  const te = header(msg, 'transfer-encoding');
  if (cl.length > 1) return { state: 'invalid', problem: 'more than one Content-Length' };
  if (cl.length === 1 && !/^\d{1,15}$/.test(cl[0] ?? '')) return { state: 'invalid', problem: `Content-Length is not a number: ${JSON.stringify(cl[0])}` };
  if (te.length > 0 && cl.length > 0) return { state: 'invalid', problem: 'Transfer-Encoding and Content-Length together' };
  if (te.length > 1 || (te.length === 1 && (te[0] ?? '').toLowerCase() !== 'chunked'))
    return { state: 'invalid', problem: `Transfer-Encoding other than one "chunked": ${JSON.stringify(te.join(', '))}` };
  if (o.kind === 'request' && header(msg, 'host').length !== 1) return { state: 'invalid', problem: `a request with ${header(msg, 'host').length} Host fields` };
  const at = end + 4;
  const noBody = o.kind === 'response' && (o.method === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304 || (o.method === 'CONNECT' && status < 300));
  const done = (body: Buffer, framing: WireMessage['framing'], consumed: number, trailers: Array<[string, string]> = []): WireResult => ({
    state: 'complete',
    msg: { startLine, headers, body, framing, trailers, status },
    consumed,
  });
  if (noBody) {
    if ((status === 204 || (status >= 100 && status < 200)) && (cl.length > 0 || te.length > 0)) return { state: 'invalid', problem: `framing fields on a ${status}` };
    return done(Buffer.alloc(0), 'none', at);
  }
  if (te.length === 1) {
    const r = chunked(buf, at);
    if (r === 'partial') return { state: 'partial' };
    if (typeof r === 'string') return { state: 'invalid', problem: r };
    return done(r.body, 'chunked', r.end, r.trailers);
  }
  if (cl.length === 1) {
    const n = Number(cl[0]);
    if (buf.length < at + n) return { state: 'partial' };
    return done(buf.subarray(at, at + n), 'length', at + n);
  }
  if (o.kind === 'request') return done(Buffer.alloc(0), 'none', at);
  if (!o.closed) return { state: 'partial' };
  return done(buf.subarray(at), 'close', buf.length);
}

export interface ResponseStream {
  /** Complete responses, interim (1xx) ones included, in order. */
  responses: WireMessage[];
  /** Bytes after the last complete response (an aborted response, when the connection closed). */
  rest: Buffer;
  /** Set when the bytes are not a sequence of valid responses. */
  problem: string | null;
}

/** Split everything a client received into responses; `method` is the first request's. */
export function parseResponses(buf: Buffer, o: { method?: string; closed: boolean }): ResponseStream {
  const responses: WireMessage[] = [];
  let i = 0;
  while (i < buf.length) {
    const r = parseMessage(buf.subarray(i), { kind: 'response', method: responses.length === 0 || responses.every((x) => x.status < 200) ? o.method : 'GET', closed: o.closed });
    if (r.state === 'invalid') return { responses, rest: buf.subarray(i), problem: r.problem };
    if (r.state === 'partial') break;
    responses.push(r.msg);
    i += r.consumed;
    if (r.msg.status === 101) break; // the rest is another protocol
  }
  return { responses, rest: buf.subarray(i), problem: null };
}
