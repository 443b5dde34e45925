/**
 * Node's own llhttp, the parser node:http uses, for Turret's upstream HTTP/1.1 client
 * (upstream-h1.ts). It is reached through `_http_common`, node:http's internal module, which
 * exports the binding's `HTTPParser` class without the DEP0111 warning that
 * `process.binding('http_parser')` prints. The class is undocumented, so its shape is checked
 * before the first upstream pool is built (`checkParser`, called by UpstreamPool's constructor):
 * the constants and methods used here, and a real parse of a small response whose callbacks must
 * arrive with the arguments this module reads. A Node whose parser differs refuses to start with
 * an error naming what differs, rather than misframing responses.
 *
 * The shape used (verified on Node 20.20.2 here, by running `checkParser`, and against
 * src/node_http_parser.cc of Node's main branch as of late 2025, the code of Node 22 and 24):
 *
 * - `new HTTPParser()`, `initialize(type, resource, maxHeaderSize, lenientFlags)`,
 *   `execute(buffer)` → bytes parsed or an Error with `code` (`HPE_…`), `finish()` at EOF →
 *   undefined or such an Error, `close()` frees the C++ parser (never from inside one of its
 *   own callbacks: the parser would be freed under its feet and the process dies).
 * - callbacks at numeric indexes: `kOnHeaders(fields, url)` when more than 32 fields (the
 *   binding's kMaxHeaderFieldsCount) make it flush early, and for trailers;
 *   `kOnHeadersComplete(major, minor, fields | undefined, method, url, status, statusMessage,
 *   upgrade, shouldKeepAlive)` whose return value 1 tells llhttp the message has no body (a
 *   response to HEAD); `kOnBody(buffer)` with one argument (before Node 16 it was
 *   `(buffer, offset, length)`); `kOnMessageComplete()`; `kOnMessageBegin()`.
 * - `kLenientNone` 0: strict parsing, no lenient flag.
 */
import { createRequire } from 'node:module';

export interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(b: Buffer): number | Error;
  finish(): Error | undefined;
  close(): void;
  /** Request mode (listen/h1-server.ts): read a stream handle in C++, results through kOnExecute. */
  consume(handle: object): void;
  unconsume(): void;
  getCurrentBuffer(): Buffer;
  pause(): void;
  resume(): void;
  [k: number]: unknown;
}

export interface ParserClass {
  new (): Parser;
  REQUEST: number;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
  kLenientNone: number;
}

/** The parser class, or undefined when `_http_common` has none (checkParser says so). */
const common = createRequire(import.meta.url)('_http_common') as { HTTPParser?: ParserClass };
export const HTTPParser = common.HTTPParser as ParserClass;

let checked: Error | null | undefined;

/**
 * Throws, with what differs, when this Node's parser does not have the shape this module relies
 * on. The result is kept: the check runs once per process.
 */
export function checkParser(): void {
  if (checked === undefined) checked = shapeProblem();
  if (checked) throw checked;
}

function shapeProblem(): Error | null {
  const fail = (what: string): Error =>
    new Error(`Turret's upstream HTTP/1.1 client needs node:http's internal HTTPParser (_http_common) as in Node 20-24; this Node (${process.version}) differs: ${what}`);
  const P = HTTPParser as unknown as { [k: string]: unknown; prototype: Record<string, unknown> } | undefined;
  if (P === undefined || typeof (P as unknown) !== 'function') return fail('_http_common exports no HTTPParser class');
  for (const k of ['REQUEST', 'RESPONSE', 'kOnMessageBegin', 'kOnHeaders', 'kOnHeadersComplete', 'kOnBody', 'kOnMessageComplete', 'kOnExecute', 'kLenientNone'] as const) {
    if (typeof P[k] !== 'number') return fail(`HTTPParser.${k} is not a number`);
  }
  if (P.kLenientNone !== 0) return fail('HTTPParser.kLenientNone is not 0');
  for (const m of ['initialize', 'execute', 'finish', 'close', 'consume', 'unconsume', 'getCurrentBuffer', 'pause', 'resume'] as const) {
    if (typeof P.prototype[m] !== 'function') return fail(`HTTPParser.prototype.${m} is not a function`);
  }
  // A real parse: a 103, then a chunked 200 with 40 fields (more than the binding's 32, so they
  // arrive through kOnHeaders), a body in two chunks and a trailer.
  const seen: string[] = [];
  const p = new HTTPParser();
  try {
    p.initialize(HTTPParser.RESPONSE, {}, 64 * 1024, HTTPParser.kLenientNone);
    let flushed: string[] = [];
    p[HTTPParser.kOnHeaders] = (h: unknown) => {
      if (!Array.isArray(h)) seen.push('headers:not-array');
      else flushed = flushed.concat(h as string[]);
    };
    p[HTTPParser.kOnHeadersComplete] = (...a: unknown[]): number => {
      const fields = (a[2] as string[] | undefined) ?? flushed;
      flushed = [];
      seen.push(`head:${a.length}:${String(a[0])}.${String(a[1])}:${String(a[5])}:${fields.length}:${String(a[8])}`);
      return 0;
    };
    p[HTTPParser.kOnBody] = (...a: unknown[]) => {
      seen.push(`body:${a.length}:${Buffer.isBuffer(a[0]) ? (a[0] as Buffer).toString('latin1') : typeof a[0]}`);
    };
    p[HTTPParser.kOnMessageComplete] = () => {
      seen.push(`done:${flushed.join('=')}`);
      flushed = [];
    };
    let head = 'HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-t\r\n';
    for (let i = 0; i < 38; i++) head += `x-f${i}: ${i}\r\n`;
    const r = p.execute(Buffer.from(`${head}\r\n2\r\nab\r\n1\r\nc\r\n0\r\nx-t: 1\r\n\r\n`, 'latin1'));
    if (r instanceof Error) return fail(`a valid response failed to parse (${String((r as { code?: unknown }).code)})`);
    const want = ['head:9:1.1:103:2:true', 'done:', 'head:9:1.1:200:80:true', 'body:1:ab', 'body:1:c', 'done:x-t=1'];
    if (seen.join('|') !== want.join('|')) return fail(`callbacks arrived as ${seen.join('|')}, expected ${want.join('|')}`);
    const bad = new HTTPParser();
    bad.initialize(HTTPParser.RESPONSE, {}, 64 * 1024, HTTPParser.kLenientNone);
    bad[HTTPParser.kOnHeadersComplete] = () => 0;
    const e = bad.execute(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n', 'latin1'));
    bad.close();
    if (!(e instanceof Error) || !String((e as { code?: unknown }).code).startsWith('HPE_')) return fail('Content-Length with Transfer-Encoding was not refused with an HPE_ code');
  } catch (e) {
    return fail(`the check threw ${String(e)}`);
  } finally {
    p.close();
  }
  return null;
}
