/**
 * Turret's own HTTP/1.1 server for the decrypted connections of intercepted tunnels, in place of
 * a never-listening `http.Server`: Node's own llhttp (the parser node:http uses, llhttp.ts) in
 * request mode, strict (no lenient flag), `maxHeaderSize` = max_header_bytes, driven directly on
 * the TLS socket, with request and response objects that are only what the stages use
 * (h1-request.ts, h1-response.ts). Node's IncomingMessage / ServerResponse machinery per request
 * was 10–15 µs of an intercepted request (docs/benchmarks.md "Hot path", ninth and eleventh passes).
 *
 * It is an EventEmitter with http.Server's events and their arguments, so server.ts, limits.ts
 * (the slow-client guard), drain.ts and websocket.ts use it as they used the inner http.Server:
 * 'connection' (socket) takes a connection; 'request' (req, res); 'clientError' (err, socket) for a
 * parse error, a socket error, or EOF inside a message; 'upgrade' / 'connect' (req, socket, head)
 * hand the socket over with the bytes after the head. What each connection does is node:http's
 * server (lib/_http_server.js of Node 20), step for step:
 *
 * - pipelined requests are parsed as they arrive; their responses queue and leave in order (a
 *   queued response keeps its bytes until the one before it finished); reading pauses while the
 *   socket or the queued responses hold more than the socket's high-water mark;
 * - a request's body is the request itself (a Readable), filled by the parser; a body nobody read
 *   is thrown away when its response finished, so the next request can be parsed;
 * - a response that ends its connection (Connection: close, HTTP/1.0 without keep-alive, a
 *   close-delimited body) ends the socket after its last byte; otherwise the connection waits for
 *   the next request up to keepAliveTimeout + 1 s (Node's margin) without a byte from the client,
 *   then closes (as the socket's own timeout, but on the shared coarse clock, coarse-timers.ts:
 *   no native timer made and cleared per response);
 * - `Expect: 100-continue` on HTTP/1.1 is answered 100 before the request runs; another
 *   expectation goes to 'checkExpectation' when listened, or is answered 417, and never runs; `PRI` (an HTTP/2 preface) closes the connection;
 * - when the client ends its side, the parser is finished (EOF inside a message is a clientError,
 *   HPE_INVALID_EOF_STATE) and the socket ends; when it closes, unfinished requests are destroyed
 *   (`aborted`) and the response being sent closes.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { HTTPParser, type Parser } from '../llhttp.js';
import { H1Request, MAX_HEADER_PAIRS, type RequestSource } from './h1-request.js';
import { methods } from './h1-methods.js';
import { H1Response, type ResponseOwner } from './h1-response.js';
import { CoarseTimeout } from '../coarse-timers.js';

export interface H1ServerOptions {
  maxHeaderSize: number;
  keepAliveTimeout: number;
}

/** node:http keeps an idle keep-alive connection this much longer than it announces. */
const KEEP_ALIVE_MARGIN_MS = 1000;

export class H1Server extends EventEmitter {
  readonly maxHeaderSize: number;
  readonly keepAliveTimeout: number;

  constructor(o: H1ServerOptions) {
    super();
    this.maxHeaderSize = o.maxHeaderSize;
    this.keepAliveTimeout = o.keepAliveTimeout;
    methods();
    this.on('connection', (socket: Socket) => void new H1Connection(this, socket));
  }

  /** http.Server's close(): this server never listens, so there is nothing to stop. */
  close(): void {}
}

interface ParseError extends Error {
  code?: string;
  reason?: string;
  rawPacket?: Buffer;
}

class H1Connection implements ResponseOwner, RequestSource {
  private readonly parser: Parser;
  private readonly table = methods();
  /** Requests parsed whose response has not finished, oldest first (node:http's state.incoming). */
  private readonly incoming: H1Request[] = [];
  /** Responses waiting for their turn (state.outgoing). */
  private readonly outgoing: H1Response[] = [];
  current: H1Response | null = null;
  /** The request the parser is on, or the last one it finished (parser.incoming). */
  private req: H1Request | null = null;
  private fields: string[] = [];
  private url = '';
  private outgoingData = 0;
  private paused = false;
  /**
   * The wait for the next request after a response (node:http's socket.setTimeout(keepAliveTimeout
   * + 1 s)): made once per connection, armed per response, cleared by the next head; a read while
   * it runs restarts it, as a read restarts a socket's timeout.
   */
  private keepAlive: CoarseTimeout<H1Connection> | null = null;
  /** The parser reads the socket's stream handle itself (consume). */
  private consumed = false;
  private freed = false;
  /** The socket's 'error' still reaches clientError (node:http listens for the first one only). */
  private errorListening = true;
  readonly keepAliveTimeoutS: number;
  private readonly onData = (d: Buffer): void => this.data(d);
  private readonly onEnd = (): void => this.end();
  private readonly onClose = (): void => this.close();
  private readonly onDrain = (): void => this.drain();
  private readonly onError = (e: Error): void => {
    if (this.errorListening) this.clientError(e);
  };
  private readonly onTimeout = (): void => this.timeout();
  /**
   * node:http's onSocketResume: a consumed socket's reads start again ('resume' comes a tick after
   * resume()), unless the connection paused it meanwhile.
   */
  private readonly onResume = (): void => {
    const socket = this.socket;
    if (this.paused || held(socket)) {
      socket.pause();
      return;
    }
    const h = (socket as unknown as { _handle?: StreamHandle | null })._handle;
    if (h && !h.reading) {
      h.reading = true;
      h.readStart();
    }
  };

  constructor(
    private readonly server: H1Server,
    private readonly socket: Socket,
  ) {
    this.keepAliveTimeoutS = Math.floor(server.keepAliveTimeout / 1000);
    const p = new HTTPParser();
    this.parser = p;
    p.initialize(HTTPParser.REQUEST, {}, server.maxHeaderSize, HTTPParser.kLenientNone);
    p[HTTPParser.kOnHeaders] = (fields: string[], url: string): void => {
      if (this.fields.length < MAX_HEADER_PAIRS) this.fields.push(...fields);
      this.url += url;
    };
    p[HTTPParser.kOnHeadersComplete] = (
      major: number,
      minor: number,
      fields: string[] | undefined,
      method: number,
      url: string | undefined,
      _status: unknown,
      _message: unknown,
      upgrade: boolean,
      keepAlive: boolean,
    ): number => this.headersComplete(major, minor, fields, method, url, upgrade, keepAlive);
    p[HTTPParser.kOnBody] = (b: Buffer): void => {
      const r = this.req;
      if (r !== null && !r._dumped && !r.push(b)) this.socket.pause();
    };
    p[HTTPParser.kOnMessageComplete] = (): void => this.messageComplete();
    // As node:http: the parser reads the TLS stream in C++ (no 'data' event per read), and the
    // socket's pause / resume start and stop those reads. 'data' stays the way in for a socket
    // without a stream handle.
    socket.on('data', this.onData);
    const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
    if (handle && handle.isStreamBase && !handle._consumed) {
      this.consumed = true;
      handle._consumed = true;
      p.consume(handle);
      p[HTTPParser.kOnExecute] = (ret: number | Error): void => {
        (socket as unknown as { _unrefTimer(): void })._unrefTimer();
        if (this.keepAlive?.armed) this.keepAlive.arm(this.server.keepAliveTimeout + KEEP_ALIVE_MARGIN_MS);
        this.afterExecute(ret, undefined);
      };
      socket.on('resume', this.onResume);
      socket.on('pause', onSocketPause);
    }
    socket.on('error', this.onError);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('drain', this.onDrain);
    socket.on('timeout', this.onTimeout);
  }

  private headersComplete(major: number, minor: number, fields: string[] | undefined, m: number, url: string | undefined, upgrade: boolean, keepAlive: boolean): number {
    if (fields === undefined) {
      fields = this.fields;
      this.fields = [];
    }
    if (url === undefined) {
      url = this.url;
      this.url = '';
    }
    const method = this.table[m];
    // A method number this Node's table lacks: refused as malformed (execute fails, clientError).
    if (method === undefined) return -1;
    const req = new H1Request(this.socket, this, major, minor, method, url, fields, upgrade);
    this.req = req;
    this.keepAlive?.clear();
    if (upgrade) {
      req.upgrade = method === 'CONNECT' || this.server.listenerCount('upgrade') > 0;
      if (req.upgrade) return 2;
    }
    this.incoming.push(req);
    const socket = this.socket;
    // A flood of pipelined requests whose answers are not read stops being read (as node:http).
    if (!this.paused && (socket.writableNeedDrain || this.outgoingData >= socket.writableHighWaterMark)) {
      this.paused = true;
      socket.pause();
    }
    const res = new H1Response(req, this, socket.writableHighWaterMark);
    res.shouldKeepAlive = keepAlive;
    if (this.current !== null) this.outgoing.push(res);
    else {
      this.current = res;
      res.assign(socket);
    }
    if (major === 1 && minor === 1 && req.headers.expect !== undefined) {
      if (/(?:^|\W)100-continue(?:$|\W)/i.test(req.headers.expect)) {
        res._expect_continue = true;
        res.writeContinue();
        this.server.emit('request', req, res);
      } else if (this.server.listenerCount('checkExpectation') > 0) {
        // As node:http: a listener answers it (server.ts records it and answers 417).
        this.server.emit('checkExpectation', req, res);
      } else {
        res.writeHead(417);
        res.end();
      }
      return 0;
    }
    this.server.emit('request', req, res);
    return 0;
  }

  private messageComplete(): void {
    const r = this.req;
    if (r !== null) {
      r.complete = true;
      if (this.fields.length > 0) {
        r.addTrailers(this.fields);
        this.fields = [];
        this.url = '';
      }
      r.push(null);
    }
    this.readStart();
  }

  readStart(): void {
    if (!this.paused && !held(this.socket) && this.socket.readable) this.socket.resume();
  }

  private data(d: Buffer): void {
    if (this.keepAlive?.armed) this.keepAlive.arm(this.server.keepAliveTimeout + KEEP_ALIVE_MARGIN_MS);
    this.afterExecute(this.parser.execute(d), d);
  }

  /** After the parser ran on what arrived (`d`, or its own buffer when it consumes). */
  private afterExecute(ret: number | Error, d: Buffer | undefined): void {
    if (ret instanceof Error) {
      const e = ret as ParseError;
      e.rawPacket = d ?? this.parser.getCurrentBuffer();
      if (typeof e.reason === 'string') e.message = `Parse Error: ${e.reason}`;
      this.clientError(e);
    } else {
      const req = this.req;
      if (req !== null && req.upgrade) return this.handOver(req, (d ?? this.parser.getCurrentBuffer()).subarray(ret));
      if (req !== null && req.method === 'PRI') this.socket.destroy();
    }
    // A flood of pipelined requests paused the socket: the parser stops too (node:http).
    if (this.paused && !this.freed) this.parser.pause();
  }

  /** Upgrade or CONNECT: the socket leaves this server with the bytes after the head. */
  private handOver(req: H1Request, head: Buffer): void {
    const socket = this.socket;
    socket.off('data', this.onData);
    socket.off('end', this.onEnd);
    socket.off('drain', this.onDrain);
    socket.off('error', this.onError);
    socket.off('timeout', this.onTimeout);
    // The requests before it are no longer aborted by a close (node:http drops its close listener),
    // but the response being sent still closes with the socket (its own listener in node:http).
    socket.off('close', this.onClose);
    socket.on('close', () => this.current?.closed());
    this.free(true);
    (socket as unknown as { readableFlowing: boolean | null }).readableFlowing = null;
    this.server.emit(req.method === 'CONNECT' ? 'connect' : 'upgrade', req, socket, head);
  }

  private end(): void {
    const ret = this.parser.finish();
    if (ret instanceof Error) this.clientError(ret);
    else this.socket.end();
  }

  /**
   * The parser stops reading the socket (finished first on a hand-over, as node:http does) and is
   * closed once its stack has unwound: never from inside one of its own callbacks.
   */
  private free(finish = false): void {
    if (this.freed) return;
    this.freed = true;
    this.keepAlive?.clear();
    const p = this.parser;
    if (this.consumed) {
      p.unconsume();
      this.socket.off('resume', this.onResume);
      this.socket.off('pause', onSocketPause);
    }
    if (finish) p.finish();
    setImmediate(() => p.close());
  }

  private close(): void {
    this.free();
    const incoming = this.incoming.splice(0);
    for (const r of incoming) r.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    this.current?.closed();
  }

  private clientError(e: ParseError): void {
    this.errorListening = false;
    const socket = this.socket;
    if (socket.listenerCount('error') === 0) socket.on('error', () => {});
    if (this.server.emit('clientError', e, socket)) return;
    if (socket.writable && (this.current === null || !this.current._headerSent)) socket.write('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    socket.destroy(e);
  }

  /** The keep-alive wait passed: what the socket's 'timeout' did (a closed one is left alone). */
  keepAliveExpired(): void {
    if (!this.socket.destroyed) this.timeout();
  }

  private timeout(): void {
    const req = this.req;
    const reqTimeout = req !== null && !req.complete && req.emit('timeout', this.socket);
    const resTimeout = this.current !== null && this.current.emit('timeout', this.socket);
    const serverTimeout = this.server.emit('timeout', this.socket);
    if (!reqTimeout && !resTimeout && !serverTimeout) this.socket.destroy();
  }

  private drain(): void {
    const socket = this.socket;
    if (this.paused && this.outgoingData <= socket.writableHighWaterMark) {
      this.paused = false;
      if (!this.freed) this.parser.resume();
      socket.resume();
    }
    this.current?.drained();
  }

  pending(delta: number): void {
    this.outgoingData += delta;
    this.drain();
  }

  finished(res: H1Response): void {
    if (this.incoming[0] === res.req) this.incoming.shift();
    const req = res.req;
    if (!req._consuming && !(req as unknown as { _readableState: { resumeScheduled: boolean } })._readableState.resumeScheduled) req._dump();
    res.socket = null;
    if (this.current === res) this.current = null;
    process.nextTick(closeResponse, res);
    const socket = this.socket;
    if (res._last) {
      socket.destroySoon();
    } else if (this.outgoing.length === 0) {
      if (this.server.keepAliveTimeout > 0 && !this.freed) {
        this.keepAlive ??= new CoarseTimeout(keepAliveExpired, this as H1Connection);
        this.keepAlive.arm(this.server.keepAliveTimeout + KEEP_ALIVE_MARGIN_MS);
      }
    } else {
      const next = this.outgoing.shift() as H1Response;
      this.current = next;
      next.assign(socket);
    }
  }
}

interface StreamHandle {
  isStreamBase?: boolean;
  _consumed?: boolean;
  reading?: boolean;
  readStart(): void;
  readStop(): void;
}

/**
 * node:http's own mark of a connection that stopped reading (`socket._paused`), which its
 * readStart honours: set by connection.ts too while too many pipelined requests wait their turn.
 */
function held(socket: Socket): boolean {
  return (socket as Socket & { _paused?: boolean })._paused === true;
}

function onSocketPause(this: Socket): void {
  const h = (this as Socket & { _handle?: StreamHandle | null })._handle;
  if (h && h.reading) {
    h.reading = false;
    h.readStop();
  }
}

function keepAliveExpired(c: H1Connection): void {
  c.keepAliveExpired();
}

function closeResponse(res: H1Response): void {
  res.closed();
}
