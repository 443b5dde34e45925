/**
 * Leaner variants of the peers bench's Node relay (bench/peers-relay.ts), to measure how much of
 * an intercepted request's CPU is Node's HTTP machinery (http.Server + IncomingMessage /
 * ServerResponse on the client side, undici upstream). Same job as the relay: accept CONNECT,
 * terminate TLS with the committed test certificate, relay each request inside the tunnel to
 * https://127.0.0.1:PORT (the CONNECT port) over a pooled TLS connection VERIFIED against
 * UPSTREAM_CA_FILE for the request's host name, and relay the response. Benchmark code only; it
 * is driven by bench/raw-http.ts, which also checks that every variant relays correctly.
 *
 *   node --import tsx bench/raw-relay.ts PORT UPSTREAM_CA_FILE MODE
 *
 * MODE:
 *   llhttp-undici  — client side: Node's own llhttp (`require('_http_common').HTTPParser`, the
 *                    parser node:http uses, fed from the TLS socket's 'data' events); the response
 *                    head and body written with one socket.write; upstream still an undici Pool
 *   llhttp-dispatch — client side as above; upstream the same undici Pool through `dispatch` and
 *                    a handler instead of `request` (no promise, no Readable response body)
 *   llhttp-raw     — client side as above; upstream: pooled tls.connect sockets, each with an
 *                    HTTPParser in response mode, the request written with one socket.write
 *   hand-raw       — client side: a strict hand-written request parser (below) instead of
 *                    llhttp; upstream as in llhttp-raw
 *   server-raw     — the relay's client side (http.Server, ServerResponse) with llhttp-raw's upstream
 *   server-dispatch — the relay's client side with llhttp-dispatch's upstream
 *   …-consume      — llhttp-undici-consume / llhttp-dispatch-consume / llhttp-raw-consume: the client-side parser reads
 *                    the TLS stream in C++ (`parser.consume(socket._handle)`, as http.Server
 *                    does) instead of JavaScript 'data' events
 *
 * What every variant keeps from the relay: keep-alive both sides; responses with Content-Length
 * relayed with it, responses without one re-framed chunked to an HTTP/1.1 client (close-delimited
 * to HTTP/1.0); HEAD, 204 and 304 without a body; request bodies (Content-Length or chunked)
 * streamed upstream; the relay's hop-by-hop headers dropped both ways (its HOP set); an
 * HTTP/1.1 request without Host refused (http.Server's requireHostHeader); parse errors answered
 * 400 and the connection closed; pipelined requests answered in order; Upgrade and CONNECT
 * inside the tunnel refused (the connection is closed). What it leaves out (bench code): timeouts,
 * a bound on upstream connections and on buffered request bodies of pipelined requests, retry
 * of an idempotent request on a pooled connection the upstream closed meanwhile (answered 502).
 */
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Readable, type Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';

interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(b: Buffer): number | Error;
  finish(): number | Error | undefined;
  consume(handle: unknown): void;
  close(): void;
  [k: number]: unknown;
}
interface ParserClass {
  new (): Parser;
  REQUEST: number;
  RESPONSE: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
  kLenientNone: number;
}
// `process.binding('http_parser').HTTPParser` is the same class but prints DEP0111 on Node 20;
// `_http_common` (node:http's own module) exports it without a warning.
const { HTTPParser, methods } = createRequire(import.meta.url)('_http_common') as { HTTPParser: ParserClass; methods: string[] };

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures');
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);
const MAX_HEAD = 16 * 1024; // http.Server's default maxHeaderSize

/** One request read from the client, its body buffered until an upstream takes it. */
interface Req {
  method: string;
  url: string;
  /** Raw header names and values, alternating, as read. */
  headers: string[];
  major: number;
  minor: number;
  keepAlive: boolean;
  host: string | undefined;
  /** -1: none; otherwise the Content-Length value. */
  contentLength: number;
  chunked: boolean;
  body: Buffer[];
  complete: boolean;
  onBody: ((b: Buffer) => void) | null;
  onEnd: (() => void) | null;
  /** Set by the upstream while the request body is still being sent: drops that exchange. */
  onAbort: (() => void) | null;
}

function hasBody(r: Req): boolean {
  return r.chunked || r.contentLength > 0;
}

/** Where an upstream hands one response. `data` returns false when the client wants a pause. */
interface Sink {
  head(status: number, headers: string[]): void;
  data(b: Buffer): boolean;
  flush(): void;
  end(): void;
  fail(): void;
  drained(fn: () => void): void;
}

interface Upstream {
  send(port: number, servername: string, req: Req, sink: Sink): void;
}

const STATUS = http.STATUS_CODES;

/** The response to one client request, written in as few socket writes as the upstream allows. */
class Exchange implements Sink {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private chunked = false;
  private noBody = false;
  private closeAfter = false;
  private started = false;
  private finished = false;
  constructor(
    private readonly conn: ClientConn,
    readonly req: Req,
  ) {}

  head(status: number, headers: string[]): void {
    this.started = true;
    const req = this.req;
    this.noBody = req.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    let h = `HTTP/1.1 ${status} ${STATUS[status] ?? 'Unknown'}\r\n`;
    let length = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      const lower = name.toLowerCase();
      if (HOP.has(lower)) continue;
      if (lower === 'content-length') length = true;
      h += `${name}: ${headers[i + 1]}\r\n`;
    }
    if (!this.noBody && !length) {
      if (req.minor >= 1) {
        h += 'transfer-encoding: chunked\r\n';
        this.chunked = true;
      } else this.closeAfter = true;
    }
    if (!req.keepAlive || this.closeAfter) h += 'connection: close\r\n';
    else if (req.minor === 0) h += 'connection: keep-alive\r\n';
    this.pending.push(Buffer.from(`${h}\r\n`, 'latin1'));
  }

  data(b: Buffer): boolean {
    if (this.noBody || b.length === 0) return true;
    if (this.chunked) this.pending.push(Buffer.from(`${b.length.toString(16)}\r\n`, 'latin1'), b, CRLF);
    else this.pending.push(b);
    this.pendingBytes += b.length;
    if (this.pendingBytes >= 65536) this.flush();
    return !this.conn.sock.writableNeedDrain;
  }

  flush(): void {
    const p = this.pending;
    if (p.length === 0 || this.conn.sock.destroyed) return;
    this.conn.sock.write(p.length === 1 ? (p[0] as Buffer) : Buffer.concat(p));
    this.pending = [];
    this.pendingBytes = 0;
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.chunked) this.pending.push(LAST_CHUNK);
    this.flush();
    if (this.closeAfter || !this.req.keepAlive) this.conn.sock.end();
    this.conn.next(this);
  }

  fail(): void {
    if (this.finished) return;
    this.finished = true;
    // Nothing sent yet: a clean 502 (the relay's answer); otherwise the client must see a cut.
    if (!this.started && this.pending.length === 0) {
      this.conn.sock.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    } else this.conn.sock.destroy();
    this.conn.next(this);
  }

  drained(fn: () => void): void {
    this.conn.sock.once('drain', fn);
  }

  untouched(): boolean {
    return !this.started && this.pending.length === 0 && !this.finished;
  }

  abandon(): void {
    this.finished = true;
  }
}

const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** What a request parser reports: the shape of llhttp's callbacks, method as a name. */
interface RequestEvents {
  headersComplete(major: number, minor: number, headers: string[], method: string, url: string, upgrade: boolean, keepAlive: boolean): void;
  body(b: Buffer): void;
  complete(): void;
  error(): void;
}

/** A client's TLS connection inside the tunnel: requests in order, one upstream exchange at a time. */
class ClientConn implements RequestEvents {
  private readonly queue: Req[] = [];
  private parsing: Req | null = null;
  private active: Exchange | null = null;
  private closed = false;
  constructor(
    readonly sock: tls.TLSSocket,
    private readonly port: number,
    private readonly upstream: Upstream,
  ) {}

  headersComplete(major: number, minor: number, headers: string[], method: string, url: string, upgrade: boolean, keepAlive: boolean): void {
    let host: string | undefined;
    let contentLength = -1;
    let chunked = false;
    for (let i = 0; i < headers.length; i += 2) {
      const lower = (headers[i] as string).toLowerCase();
      if (lower === 'host') host ??= headers[i + 1];
      else if (lower === 'content-length') contentLength = Number(headers[i + 1]);
      else if (lower === 'transfer-encoding') chunked = true; // the parsers refuse anything but a final "chunked"
    }
    if (this.closed) return;
    if (upgrade || method === 'CONNECT' || (minor >= 1 && host === undefined)) return this.error();
    const req: Req = { method, url, headers, major, minor, keepAlive, host, contentLength, chunked, body: [], complete: false, onBody: null, onEnd: null, onAbort: null };
    this.parsing = req;
    this.queue.push(req);
    if (!this.active) this.start();
  }

  body(b: Buffer): void {
    const r = this.parsing;
    if (!r) return;
    if (r.onBody) r.onBody(b);
    else r.body.push(b);
  }

  complete(): void {
    const r = this.parsing;
    if (!r) return;
    this.parsing = null;
    r.complete = true;
    r.onEnd?.();
  }

  error(): void {
    if (this.closed) return;
    this.closed = true;
    const a = this.active;
    // llhttp may fail a request after reporting its head (e.g. on a Transfer-Encoding it then
    // refuses): if nothing of that exchange was written, it is dropped and answered 400, as
    // http.Server does; with a response under way the connection is cut.
    const answer = this.queue.length <= 1 && (!a || a.untouched());
    if (answer) a?.abandon();
    this.parsing?.onAbort?.();
    if (answer) {
      this.sock.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    } else this.sock.destroy();
  }

  private start(): void {
    const req = this.queue[0];
    if (!req || this.sock.destroyed) return;
    const ex = (this.active = new Exchange(this, req));
    this.upstream.send(this.port, (req.host ?? '').replace(/:\d+$/, ''), req, ex);
  }

  next(ex: Exchange): void {
    if (this.active !== ex) return;
    this.active = null;
    this.queue.shift();
    if (!ex.req.keepAlive) this.closed = true;
    if (!this.closed) this.start();
  }
}

type Flat = string[];

/** llhttp in request mode on a client connection, fed by 'data' events or by `consume`. */
function llhttpClient(sock: tls.TLSSocket, conn: ClientConn, consume: boolean): void {
  const p = new HTTPParser();
  p.initialize(HTTPParser.REQUEST, {}, 0, HTTPParser.kLenientNone);
  let partial: Flat = [];
  let partialUrl = '';
  p[HTTPParser.kOnHeaders] = (h: Flat, url: string): void => {
    partial.push(...h);
    partialUrl += url;
  };
  p[HTTPParser.kOnHeadersComplete] = (
    major: number,
    minor: number,
    headers: Flat | undefined,
    method: number,
    url: string | undefined,
    _s: unknown,
    _m: unknown,
    upgrade: boolean,
    keepAlive: boolean,
  ): number => {
    const name = methods[method];
    if (name === undefined) {
      conn.error();
      return 0;
    }
    conn.headersComplete(major, minor, headers ?? partial, name, url ?? partialUrl, upgrade, keepAlive);
    partial = [];
    partialUrl = '';
    return 0;
  };
  p[HTTPParser.kOnBody] = (b: Buffer): void => conn.body(b);
  p[HTTPParser.kOnMessageComplete] = (): void => conn.complete();
  const done = (r: number | Error | undefined): void => {
    if (r instanceof Error) conn.error();
  };
  if (consume) {
    p[HTTPParser.kOnExecute] = done;
    p.consume((sock as unknown as { _handle: unknown })._handle);
    sock.resume(); // start reading: the reads go to the parser, not to 'data' events
  } else sock.on('data', (b: Buffer) => done(p.execute(b)));
  sock.on('end', () => done(p.finish()));
  sock.on('close', () => p.close());
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const BARE_LF = /(?<!\r)\n/;
const BARE_CR_LF = /\r(?!\n)|(?<!\r)\n/;
const HEX = /^[0-9A-Fa-f]{1,8}(;[\t\x20-\x7e]*)?$/;

/**
 * A strict request parser for the tunnel: CRLF only (a bare CR or LF is an error), no obs-fold,
 * tokens for the method and header names, field values without controls, one Content-Length of
 * digits or one Transfer-Encoding that is exactly "chunked" (not both, not on HTTP/1.0), one
 * Host; heads up to 16 KiB, chunk sizes up to 8 hex digits, trailers within the same bound.
 */
class HandParser {
  private buf: Buffer | null = null;
  private state: 'head' | 'length' | 'size' | 'data' | 'data-crlf' | 'trailers' = 'head';
  private left = 0;
  constructor(private readonly ev: RequestEvents) {}

  execute(chunk: Buffer): boolean {
    let b = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    this.buf = null;
    let i = 0;
    for (let guard = 0; i < b.length && guard < 100_000; guard++) {
      if (this.state === 'head') {
        while (i + 1 < b.length && b[i] === 13 && b[i + 1] === 10) i += 2; // empty lines before a request
        const end = b.indexOf('\r\n\r\n', i, 'latin1');
        if (end < 0) {
          if (b.length - i > MAX_HEAD || BARE_LF.test(b.toString('latin1', i))) return false;
          break;
        }
        if (end - i > MAX_HEAD || !this.head(b.toString('latin1', i, end))) return false;
        i = end + 4;
      } else if (this.state === 'length') {
        const n = Math.min(this.left, b.length - i);
        this.ev.body(b.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) this.message();
      } else if (this.state === 'data') {
        const n = Math.min(this.left, b.length - i);
        this.ev.body(b.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = 'data-crlf';
      } else {
        // size, data-crlf and trailers are lines
        const eol = b.indexOf('\r\n', i, 'latin1');
        if (eol < 0) {
          if (b.length - i > MAX_HEAD) return false;
          break;
        }
        const line = b.toString('latin1', i, eol);
        i = eol + 2;
        if (line.includes('\r') || line.includes('\n')) return false;
        if (this.state === 'data-crlf') {
          if (line !== '') return false;
          this.state = 'size';
        } else if (this.state === 'size') {
          if (!HEX.test(line)) return false;
          this.left = parseInt(line, 16);
          this.state = this.left === 0 ? 'trailers' : 'data';
        } else if (line === '') this.message();
        else if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:/.test(line) || BAD_VALUE.test(line)) return false;
      }
    }
    if (i < b.length) this.buf = b.subarray(i);
    return true;
  }

  private message(): void {
    this.state = 'head';
    this.ev.complete();
  }

  private head(text: string): boolean {
    if (BARE_CR_LF.test(text)) return false;
    const lines = text.split('\r\n');
    const rl = REQUEST_LINE.exec(lines[0] ?? '');
    if (!rl) return false;
    const minor = Number(rl[3]);
    const headers: string[] = [];
    let length = -1;
    let chunked = false;
    let host = false;
    let connection = '';
    for (let k = 1; k < lines.length; k++) {
      const line = lines[k] as string;
      const colon = line.indexOf(':');
      if (colon <= 0) return false;
      const name = line.slice(0, colon);
      if (!TOKEN.test(name)) return false;
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
      if (BAD_VALUE.test(value)) return false;
      const lower = name.toLowerCase();
      if (lower === 'content-length') {
        if (length >= 0 || !/^\d{1,15}$/.test(value)) return false;
        length = Number(value);
      } else if (lower === 'transfer-encoding') {
        if (chunked || value.toLowerCase() !== 'chunked' || minor === 0) return false;
        chunked = true;
      } else if (lower === 'host') {
        if (host) return false;
        host = true;
      } else if (lower === 'connection') connection += `,${value.toLowerCase()}`;
      headers.push(name, value);
    }
    if (chunked && length >= 0) return false;
    const tokens = connection.split(',').map((t) => t.trim());
    const keepAlive = minor === 1 ? !tokens.includes('close') : tokens.includes('keep-alive');
    const upgrade = headers.some((h, n) => n % 2 === 0 && h.toLowerCase() === 'upgrade');
    this.ev.headersComplete(1, minor, headers, rl[1] as string, rl[2] as string, upgrade, keepAlive);
    if (chunked) this.state = 'size';
    else if (length > 0) ((this.state = 'length'), (this.left = length));
    else this.message();
    return true;
  }
}

function handClient(sock: tls.TLSSocket, conn: ClientConn): void {
  const p = new HandParser(conn);
  sock.on('data', (b: Buffer) => {
    if (!p.execute(b)) conn.error();
  });
}

/** The request body as a stream for undici, fed as the client's parser delivers it. */
function bodyStream(req: Req): Readable | null {
  if (!hasBody(req)) return null;
  const b = new Readable({ read() {} });
  for (const c of req.body) b.push(c);
  req.body = [];
  if (req.complete) b.push(null);
  else {
    req.onBody = (c) => void b.push(c);
    req.onEnd = () => void b.push(null);
    req.onAbort = () => void b.destroy(new Error('client request aborted'));
  }
  return b;
}

/** The relay's upstream: one undici Pool per origin, the same options. */
class UndiciUpstream implements Upstream {
  private readonly pools = new Map<string, Pool>();
  constructor(private readonly ca: string) {}

  protected pool(port: number, servername: string): Pool {
    const origin = `https://127.0.0.1:${port}`;
    const key = `${origin} ${servername}`;
    let pool = this.pools.get(key);
    if (!pool) this.pools.set(key, (pool = new Pool(origin, { connections: 32, connect: { ca: this.ca, servername } })));
    return pool;
  }

  send(port: number, servername: string, req: Req, sink: Sink): void {
    const pool = this.pool(port, servername);
    const headers: Record<string, string | string[]> = {};
    for (let i = 0; i < req.headers.length; i += 2) {
      const k = (req.headers[i] as string).toLowerCase();
      if (HOP.has(k)) continue;
      const v = req.headers[i + 1] as string;
      const had = headers[k];
      headers[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
    }
    headers.host = req.host ?? servername;
    const body = bodyStream(req);
    pool.request({ method: req.method as 'GET', path: req.url, headers, body }).then(
      (r) => {
        const flat: string[] = [];
        for (const [k, v] of Object.entries(r.headers)) {
          if (v === undefined) continue;
          if (Array.isArray(v)) for (const x of v) flat.push(k, x);
          else flat.push(k, v);
        }
        sink.head(r.statusCode, flat);
        r.body.on('data', (c: Buffer) => {
          if (!sink.data(c)) {
            sink.flush();
            r.body.pause();
            sink.drained(() => r.body.resume());
          }
        });
        r.body.on('end', () => sink.end());
        r.body.on('error', () => sink.fail());
      },
      () => sink.fail(),
    );
  }
}

/**
 * The same pools through undici's lowest public API, `dispatch` with a handler (no promise, no
 * Readable for the response body, raw header buffers): undici's parser, pool and connector kept.
 */
class DispatchUpstream extends UndiciUpstream {
  override send(port: number, servername: string, req: Req, sink: Sink): void {
    const headers: string[] = ['host', req.host ?? servername];
    for (let i = 0; i < req.headers.length; i += 2) {
      const k = req.headers[i] as string;
      if (!HOP.has(k.toLowerCase())) headers.push(k, req.headers[i + 1] as string);
    }
    let resume = (): void => undefined;
    this.pool(port, servername).dispatch(
      { path: req.url, method: req.method as 'GET', headers, body: bodyStream(req) },
      {
        onConnect: () => undefined,
        onHeaders: (status: number, raw: Buffer[], res: () => void): boolean => {
          resume = res;
          if (status < 200) return true;
          const flat = new Array<string>(raw.length);
          for (let i = 0; i < raw.length; i++) flat[i] = (raw[i] as Buffer).toString('latin1');
          sink.head(status, flat);
          return true;
        },
        onData: (c: Buffer): boolean => {
          if (sink.data(c)) return true;
          sink.flush();
          sink.drained(resume);
          return false;
        },
        onComplete: () => sink.end(),
        onError: () => sink.fail(),
      },
    );
  }
}

/** One upstream TLS connection with llhttp in response mode. */
class UpConn {
  readonly sock: tls.TLSSocket;
  private readonly parser = new HTTPParser();
  private sink: Sink | null = null;
  private method = '';
  private interim = false;
  private keepAlive = false;
  private requestSent = false;
  private partial: Flat = [];
  dead = false;

  constructor(
    private readonly idle: UpConn[],
    port: number,
    servername: string,
    secureContext: tls.SecureContext,
  ) {
    // No SNI for an address (as undici): the certificate is then checked against the address.
    this.sock = tls.connect({ host: '127.0.0.1', port, ...(net.isIP(servername) ? {} : { servername }), secureContext });
    this.sock.setNoDelay(true);
    const p = this.parser;
    p.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
    p[HTTPParser.kOnHeaders] = (h: Flat): void => void this.partial.push(...h);
    p[HTTPParser.kOnHeadersComplete] = (
      _ma: number,
      _mi: number,
      headers: Flat | undefined,
      _m: unknown,
      _u: unknown,
      status: number,
      _sm: unknown,
      _up: boolean,
      keepAlive: boolean,
    ): number => {
      const h = headers ?? this.partial;
      this.partial = [];
      // 1xx: an interim response without a body; the final one follows (undici drops them too).
      this.interim = status < 200;
      if (this.interim) return 0;
      this.keepAlive = keepAlive;
      this.sink?.head(status, h);
      return this.method === 'HEAD' ? 1 : 0;
    };
    p[HTTPParser.kOnBody] = (b: Buffer): void => {
      if (this.sink && !this.sink.data(b)) {
        const s = this.sink;
        s.flush();
        this.sock.pause();
        s.drained(() => this.sock.resume());
      }
    };
    p[HTTPParser.kOnMessageComplete] = (): void => {
      if (this.interim) return;
      const s = this.sink;
      this.sink = null;
      // Back in the pool first, so that a pipelined request the end starts can reuse it.
      if (this.keepAlive && this.requestSent && !this.dead) this.idle.push(this);
      else this.close();
      s?.end();
    };
    this.sock.on('data', (b: Buffer) => {
      if (!this.sink) return this.close(); // bytes while idle: the framing is broken
      const r = p.execute(b);
      if (r instanceof Error) return this.close();
      this.sink?.flush();
    });
    this.sock.on('end', () => {
      const r = p.finish(); // completes a close-delimited body
      if (r instanceof Error) this.close();
      this.close();
    });
    this.sock.on('error', () => this.close());
    this.sock.on('close', () => this.close());
  }

  send(req: Req, sink: Sink, host: string): void {
    this.sink = sink;
    this.method = req.method;
    this.requestSent = false;
    let h = `${req.method} ${req.url} HTTP/1.1\r\nhost: ${host}\r\n`;
    for (let i = 0; i < req.headers.length; i += 2) {
      const name = req.headers[i] as string;
      if (!HOP.has(name.toLowerCase())) h += `${name}: ${req.headers[i + 1]}\r\n`;
    }
    // Content-Length passes through (not hop-by-hop); a chunked request stays chunked.
    if (req.chunked) h += 'transfer-encoding: chunked\r\n';
    const out: Buffer[] = [Buffer.from(`${h}\r\n`, 'latin1')];
    const frame = (c: Buffer): void => {
      if (c.length === 0) return;
      if (req.chunked) out.push(Buffer.from(`${c.length.toString(16)}\r\n`, 'latin1'), c, CRLF);
      else out.push(c);
    };
    if (hasBody(req)) {
      for (const c of req.body) frame(c);
      req.body = [];
      if (!req.complete) {
        req.onBody = (c) => (frame(c), this.write(out));
        req.onAbort = () => this.close();
        req.onEnd = () => {
          if (req.chunked) out.push(LAST_CHUNK);
          this.requestSent = true;
          this.write(out);
        };
      } else if (req.chunked) out.push(LAST_CHUNK);
    }
    if (!hasBody(req) || req.complete) this.requestSent = true;
    this.write(out);
  }

  private write(out: Buffer[]): void {
    if (out.length === 0 || this.dead) return;
    this.sock.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
    out.length = 0;
  }

  close(): void {
    if (!this.dead) {
      this.dead = true;
      this.sock.destroy();
      // Not from inside the parser's own callback: that would free it under its feet.
      setImmediate(() => this.parser.close());
    }
    const i = this.idle.indexOf(this);
    if (i >= 0) this.idle.splice(i, 1);
    const s = this.sink;
    this.sink = null;
    s?.fail();
  }
}

/** Pooled raw upstream connections per (port, name); verified with one shared SecureContext. */
class RawUpstream implements Upstream {
  private readonly idle = new Map<string, UpConn[]>();
  private readonly secureContext: tls.SecureContext;
  constructor(ca: string) {
    this.secureContext = tls.createSecureContext({ ca });
  }

  send(port: number, servername: string, req: Req, sink: Sink): void {
    const key = `${port} ${servername}`;
    let list = this.idle.get(key);
    if (!list) this.idle.set(key, (list = []));
    let c = list.pop();
    while (c?.dead) c = list.pop();
    (c ?? new UpConn(list, port, servername, this.secureContext)).send(req, sink, req.host ?? servername);
  }
}

const [port, caFile, mode = 'llhttp-undici'] = [Number(process.argv[2]), process.argv[3] ?? '', process.argv[4]];
const ca = readFileSync(caFile, 'utf8');
const secureContext = tls.createSecureContext({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) });
const upstream: Upstream = mode.startsWith('llhttp-undici') ? new UndiciUpstream(ca) : mode.includes('-dispatch') ? new DispatchUpstream(ca) : new RawUpstream(ca);
if (
  ![
    'llhttp-undici',
    'llhttp-dispatch',
    'llhttp-raw',
    'hand-raw',
    'llhttp-undici-consume',
    'llhttp-dispatch-consume',
    'llhttp-raw-consume',
    'server-raw',
    'server-dispatch',
  ].includes(mode)
)
  throw new Error(`unknown mode ${mode}`);

/**
 * server-raw / server-dispatch: the relay's client side (http.Server, the response through
 * ServerResponse) in front of the raw or dispatch upstream, to see each upstream on its own.
 */
class ResponseSink implements Sink {
  constructor(private readonly res: http.ServerResponse) {}
  head(status: number, headers: string[]): void {
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) if (!HOP.has((headers[i] as string).toLowerCase())) out.push(headers[i] as string, headers[i + 1] as string);
    this.res.writeHead(status, out);
  }
  data(b: Buffer): boolean {
    return this.res.write(b);
  }
  flush(): void {}
  end(): void {
    this.res.end();
  }
  fail(): void {
    if (this.res.headersSent) this.res.destroy();
    else this.res.writeHead(502).end();
  }
  drained(fn: () => void): void {
    this.res.once('drain', fn);
  }
}

const ports = new WeakMap<Duplex, number>();
const inner = http.createServer((req, res) => {
  const h = req.headers;
  const r: Req = {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: req.rawHeaders,
    major: req.httpVersionMajor,
    minor: req.httpVersionMinor,
    keepAlive: true, // http.Server keeps the client connection
    host: h.host,
    contentLength: h['content-length'] === undefined ? -1 : Number(h['content-length']),
    chunked: h['transfer-encoding'] !== undefined,
    body: [],
    complete: false,
    onBody: null,
    onEnd: null,
    onAbort: null,
  };
  if (hasBody(r)) {
    req.on('data', (c: Buffer) => (r.onBody ? r.onBody(c) : r.body.push(c)));
    req.on('end', () => ((r.complete = true), r.onEnd?.()));
    req.on('aborted', () => r.onAbort?.());
  } else r.complete = true;
  upstream.send(ports.get(req.socket) ?? 443, (r.host ?? '').replace(/:\d+$/, ''), r, new ResponseSink(res));
});

const outer = http.createServer((_req, res) => void res.writeHead(501).end());
outer.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
  const [, p = '443'] = (req.url ?? '').split(':');
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  if (head.length > 0) socket.unshift(head);
  const t = new tls.TLSSocket(socket, { isServer: true, secureContext });
  t.on('error', () => t.destroy());
  if (mode.startsWith('server')) {
    ports.set(t, Number(p));
    inner.emit('connection', t);
    return;
  }
  const conn = new ClientConn(t, Number(p), upstream);
  if (mode.startsWith('hand')) handClient(t, conn);
  else llhttpClient(t, conn, mode.endsWith('-consume'));
});
outer.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
