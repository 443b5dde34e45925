/**
 * Turret's own HTTP/1.1 client for the forward stage: Node's llhttp (llhttp.ts) in response mode
 * over the sockets the guarded connector (net/connect.ts) opens, pooled per origin. It replaced
 * undici on this path because undici cost 13–15 µs of a ~110 µs intercepted request
 * (docs/benchmarks.md "Hot path → Ninth pass": relay → server-raw, the same exchange with the
 * upstream side on a raw pooled socket and llhttp), the last distance to squid ssl-bump on the
 * upstream side ("Tenth pass" measures it in Turret). The WebSocket path (upstream.ts
 * connectRaw) keeps its own raw connection; undici remains only in the client preload.
 *
 * What it does (docs/pipeline.md "Upstream", docs/security.md "Response framing"):
 *
 * - Pools: one per origin inside each (exceptions, agent) pool of upstream.ts, at most
 *   `limits.upstreamConnectionsPerAgent` connections, requests waiting in FIFO order. A request
 *   gets a connection (idle, or newly connected) and only then is its queue-wait bound cleared
 *   (queue-wait.ts); a request whose exchange ends while it waits leaves the queue at once.
 * - Request: head and a Buffer body in one socket.write; a streamed body with the socket's
 *   backpressure, by Content-Length when known, else chunked. Every header name must be a token
 *   and every value free of CR, LF, NUL and other controls (checked here, whatever the caller
 *   promises), so nothing can split the head.
 * - Response: strict llhttp (no lenient flag), head at most 64 KiB; 1xx skipped (101 to a request
 *   that asked for no upgrade is a protocol error); HEAD answers without a body; a body ended by
 *   EOF completes at EOF; any parse error is `upstream_protocol_error`, an EOF or reset inside a
 *   response `upstream_closed`. Trailers are read with the end of the body.
 * - Reading: the parser consumes the socket's stream handle in C++ (`parser.consume`, as
 *   node:http's server and listen/h1-server.ts do), its result per read through kOnExecute, with
 *   no Readable or 'data' event per read; pausing stops the handle's reads. EOF and read errors
 *   still reach the socket ('end', 'error'); the parser unconsumes before the socket is destroyed.
 * - The answer: a body that completed in the same read as its head is handed over whole
 *   (`whole`, no stream), which the small-body path sends at once; any other body is a Readable
 *   that pauses the socket while its reader is behind.
 * - Keep-alive: a connection goes back to its pool only after a complete response that allows it
 *   (no `Connection: close`, not HTTP/1.0 without keep-alive, the request fully sent, nothing
 *   after the response in the same read). It idles 4 s, or the upstream's `Keep-Alive: timeout`
 *   less 1 s, at most 60 s. An idle connection that closes, errors or receives any byte is
 *   destroyed: bytes that no request asked for are never read as the next request's response.
 * - Retry: a request written to a reused connection that closes or resets before any byte of
 *   the response is sent once more, on a new connection, when its method is idempotent (RFC 9110
 *   §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and its body can be sent again (none, or a
 *   buffer); otherwise `upstream_closed`. The upstream may have closed the idle connection while
 *   the request was on its way, which a client cannot tell from a failure of the request itself.
 * - Timeouts: `limits.headersTimeoutMs` from the request written (refreshed while a streamed body
 *   is sent) to the complete head, `limits.bodyTimeoutMs` between body chunks while the reader
 *   takes them → `upstream_timeout`. The connect timeout is the connector's.
 *
 * Every parser and socket error reaches exactly one request (or none, on an idle connection);
 * parser callbacks never call out to the request's owner, and a parser is closed only outside
 * its own callbacks.
 */
import { Readable } from 'node:stream';
import type net from 'node:net';
import { TurretError, isTurretError } from '../core/errors.js';
import { HTTPParser, type Parser } from './llhttp.js';
import type { ExchangeEnding } from './ending.js';
import type { OriginPool } from './upstream-h1-pool.js';
import {
  Call,
  CRLF,
  EXPECTS_PAYLOAD,
  H1Answer,
  H1Body,
  KEEP_ALIVE_MS,
  LAST_CHUNK,
  MAX_HEAD_BYTES,
  NO_FIELDS,
  closedError,
  fieldsOf,
  headOf,
  keepAliveMs,
  protocolError,
  socketError,
  type Fields,
} from './upstream-h1-call.js';

export { Call, H1Answer, KEEP_ALIVE_MAX_MS, KEEP_ALIVE_MS, MAX_HEAD_BYTES, keepAliveMs } from './upstream-h1-call.js';
export type { Dial, Fields, H1Callback, H1Request, H1Timeouts } from './upstream-h1-call.js';

/** A parser and a connection; the per-connection parser callbacks are this object's methods. */
export class H1Conn {
  readonly parser: Parser;
  call: Call | null = null;
  /** True once the connection carried a response: the upstream may close it before the next request. */
  private reused = false;
  /** How long the connection may idle (the upstream's Keep-Alive hint). */
  private idleMs = KEEP_ALIVE_MS;
  dead = false;
  /**
   * The socket's stream handle when the parser reads it in C++ (consume, as node:http's server
   * and listen/h1-server.ts do): no Readable, no 'data' event per read. Null for a socket without
   * one, whose reads arrive as 'data'.
   */
  private readonly handle: StreamHandle | null = null;
  /**
   * The timers are made once per connection and re-armed with refresh(), not one per request:
   * a timer that is not armed may still fire, and does nothing (its kind is not `timerKind`, or
   * the connection is not `idling`). clearTimeout only when the connection closes.
   */
  private idleTimer: NodeJS.Timeout | null = null;
  /** The duration idleTimer was made with (the upstream's hint may change it). */
  private idleTimerMs = 0;
  /** Parked: idleTimer is armed. */
  private idling = false;
  /**
   * The socket is unref'd: it idled past UNREF_AFTER_MS. A parked connection must not keep the
   * process alive (a CLI command or script whose last request is done exits, its pool unclosed),
   * but unref on every park and ref on every send was two calls through node's Socket and
   * TLSWrap's method proxy per request: the socket stays ref'd while requests follow each other
   * and is unref'd by the idle timer's first phase.
   */
  private unrefd = false;
  private headersTimer: NodeJS.Timeout | null = null;
  private bodyTimer: NodeJS.Timeout | null = null;
  /** Which of the two is armed. */
  private timerKind: 'headers' | 'body' | null = null;
  /** The last `Keep-Alive` value read on this connection and the idle time it gave. */
  private keepAliveHint: string | string[] | undefined = undefined;
  private keepAliveHintMs = KEEP_ALIVE_MS;
  private inExecute = false;
  private paused = false;
  // The message being parsed.
  private flushed: string[] = [];
  private status = 0;
  private headFields: string[] | null = null;
  private keepAlive = false;
  private interim = false;
  private complete = false;
  private after = false;
  private delivered = false;
  private gotByte = false;
  private uploaded = false;
  /**
   * Body bytes read before the head was handed over: the first read's in `chunk` (a small body
   * arrives in one), all of them in `chunks` once a second comes (no array for the first).
   */
  private chunk: Buffer | null = null;
  private chunks: Buffer[] | null = null;
  private trailers: string[] | null = null;
  private failure: TurretError | null = null;
  /** Stops a request body still being sent (and destroys it). */
  private uploading: (() => void) | null = null;

  constructor(
    readonly socket: net.Socket,
    readonly pool: OriginPool,
  ) {
    const p = new HTTPParser();
    p.initialize(HTTPParser.RESPONSE, {}, MAX_HEAD_BYTES, HTTPParser.kLenientNone);
    p[HTTPParser.kOnMessageBegin] = () => this.onMessageBegin();
    p[HTTPParser.kOnHeaders] = (h: string[]) => this.onHeaders(h);
    p[HTTPParser.kOnHeadersComplete] = (
      _ma: number,
      _mi: number,
      h: string[] | undefined,
      _m: unknown,
      _u: unknown,
      status: number,
      _sm: unknown,
      upgrade: boolean,
      keepAlive: boolean,
    ) => this.onHeadersComplete(h, status, upgrade, keepAlive);
    p[HTTPParser.kOnBody] = (b: Buffer) => this.onBody(b);
    p[HTTPParser.kOnMessageComplete] = () => this.onMessageComplete();
    this.parser = p;
    socket.setNoDelay(true);
    // 'data' stays the way in for a socket without a stream handle (and keeps the Readable
    // flowing, so that its 'end' comes as before).
    socket.on('data', (b: Buffer) => this.onData(b));
    const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
    if (handle && handle.isStreamBase && !handle._consumed) {
      handle._consumed = true;
      this.handle = handle;
      p.consume(handle);
      // No socket timeout is set on an upstream connection (the timers here are the pool's), so
      // unlike h1-server.ts nothing needs socket._unrefTimer() per read.
      p[HTTPParser.kOnExecute] = (r: number | Error) => this.onExecute(r);
    }
    socket.on('end', () => this.onEnd());
    socket.on('error', (e: Error) => this.onSocketGone(e));
    socket.on('close', () => this.onSocketGone(null));
  }

  // ---- parser callbacks: they only record; onData acts after execute() returned ----

  private onMessageBegin(): void {
    // A second message after the final response in the same read: the upstream answered what
    // nobody asked. Nothing of it reaches anyone, and the connection is not reused.
    if (this.complete) this.after = true;
  }

  private onHeaders(h: string[]): void {
    // parserOnHeaders of node:http: more than 32 fields (or trailers) arrive in pieces.
    if (this.complete) return;
    this.flushed = this.flushed.length === 0 ? h : this.flushed.concat(h);
  }

  private onHeadersComplete(h: string[] | undefined, status: number, upgrade: boolean, keepAlive: boolean): number {
    if (this.complete || this.failure) return 0;
    const fields = h ?? this.flushed;
    this.flushed = [];
    if (status < 100) {
      // llhttp reads any three digits; below 100 there is no such answer, and it would be read as
      // an interim one whose body llhttp still delivers (into the next message's).
      this.failure = protocolError(`status ${status}`);
      return 1;
    }
    if (status === 101 || upgrade) {
      this.failure = protocolError(`${status} with an upgrade nobody asked for`);
      return 1;
    }
    if (status < 200) {
      // 100, 102, 103 …: interim, no body; the final response follows on the same connection.
      this.interim = true;
      return 0;
    }
    this.status = status;
    this.headFields = fields;
    this.keepAlive = keepAlive;
    this.stopTimer();
    return this.call?.req.method === 'HEAD' ? 1 : 0;
  }

  private onBody(b: Buffer): void {
    if (this.complete || this.failure) return;
    if (this.interim) {
      // llhttp gives 1xx no body; should one ever arrive, it is no part of the answer.
      this.failure = protocolError('a body in an interim response');
      return;
    }
    const body = this.call?.body;
    if (body) {
      if (this.timerKind === 'body') this.bodyTimer?.refresh();
      if (!body.push(b) && !this.paused) {
        this.paused = true;
        this.readStop();
        // The reader is behind: its pause is not the upstream's silence.
        this.stopTimer();
      }
    } else if (this.chunk === null) this.chunk = b;
    else if (this.chunks === null) this.chunks = [this.chunk, b];
    else this.chunks.push(b);
  }

  private onMessageComplete(): void {
    if (this.complete || this.failure) return;
    if (this.interim) {
      this.interim = false;
      this.flushed = [];
      return;
    }
    this.complete = true;
    if (this.flushed.length > 0) {
      this.trailers = this.flushed;
      this.flushed = [];
      // A length cannot come after the body (RFC 9110 §6.5.1): a Content-Length there is the
      // upstream's protocol fault, as undici refused it (other fields the trailer may not carry
      // are dropped by forward.ts, never relayed).
      for (let i = 0; i < this.trailers.length; i += 2) {
        if ((this.trailers[i] as string).toLowerCase() === 'content-length') this.failure = protocolError('content-length in the trailer section');
      }
    }
  }

  // ---- socket events ----

  /** A read, on a socket the parser does not consume: parsed here. */
  private onData(b: Buffer): void {
    const call = this.call;
    if (call === null || this.complete) {
      // Bytes on an idle connection, or after a complete response: never a response to anyone.
      this.destroy(null);
      return;
    }
    this.gotByte = true;
    this.inExecute = true;
    const r = this.parser.execute(b);
    this.inExecute = false;
    this.executed(call, r);
  }

  /**
   * A read the parser consumed, already parsed (`r` as execute's). Bytes on an idle connection
   * were parsed too, into nothing anyone sees (the callbacks only record): the connection closes.
   * A response completes in the read that completes it (finished() resets the message state), so
   * a later read never finds `complete` set.
   */
  private onExecute(r: number | Error): void {
    if (this.dead) return;
    const call = this.call;
    if (call === null) {
      this.destroy(null);
      return;
    }
    this.gotByte = true;
    this.executed(call, r);
  }

  /** What execute() returned for a read of `call`'s response. */
  private executed(call: Call, r: number | Error): void {
    if (this.dead) return;
    if (r instanceof Error && !this.complete) {
      this.destroy(this.failure ?? protocolError(String((r as { code?: unknown }).code ?? 'parse error'), r));
      return;
    }
    if (this.failure) {
      this.destroy(this.failure);
      return;
    }
    // A parse error after the response completed (bytes after it) costs the connection only.
    if (r instanceof Error) this.after = true;
    this.progress(call);
  }

  /** What the last read completed: the head (maybe with the whole body), the body's end. */
  private progress(call: Call): void {
    if (!this.delivered && this.headFields !== null) {
      this.delivered = true;
      const fields = fieldsOf(this.headFields);
      this.headFields = null;
      if (this.complete) {
        const whole = this.chunks !== null ? Buffer.concat(this.chunks) : (this.chunk ?? Buffer.alloc(0));
        this.chunk = null;
        this.chunks = null;
        const a = new H1Answer(this.status, fields, whole, null);
        a.trailers = this.trailers === null ? NO_FIELDS : fieldsOf(this.trailers);
        this.finished(call, fields);
        call.answered(a);
        return;
      }
      const body = new H1Body(this);
      call.body = body;
      const chunks = this.chunks;
      if (chunks !== null) for (const c of chunks) body.push(c);
      else if (this.chunk !== null) body.push(this.chunk);
      this.chunk = null;
      this.chunks = null;
      this.startTimer('body');
      call.answered(new H1Answer(this.status, fields, null, body));
      if (this.dead) return;
    }
    if (this.complete && this.delivered) {
      const a = call.answer;
      if (a !== null && a.trailers === null) a.trailers = this.trailers === null ? NO_FIELDS : fieldsOf(this.trailers);
      this.finished(call, a?.headers ?? null);
      call.ended();
    }
  }

  /** The response is complete: the connection goes back to its pool, or closes. */
  private finished(call: Call, fields: Fields | null): void {
    this.stopTimer();
    this.call = null;
    call.conn = null;
    const reuse = this.keepAlive && this.uploaded && !this.after && fields !== null;
    let idleMs = 0;
    if (reuse) {
      // The same hint on every response of a connection, as a rule: read once.
      const hint = fields['keep-alive'];
      if (hint === undefined) idleMs = KEEP_ALIVE_MS;
      else if (hint === this.keepAliveHint) idleMs = this.keepAliveHintMs;
      else {
        idleMs = keepAliveMs(hint);
        // A repeated field (an array) is never equal to the next one's: only strings are kept.
        if (typeof hint === 'string') {
          this.keepAliveHint = hint;
          this.keepAliveHintMs = idleMs;
        }
      }
    }
    if (idleMs <= 0) {
      this.destroy(null);
      return;
    }
    this.resetMessage();
    this.idleMs = idleMs;
    // Reused from here on, also when a waiting request takes it at once (never parked): the
    // upstream may close it before reading that request just as well.
    this.reused = true;
    this.pool.idled(this);
  }

  /** No request wants this connection now: it idles until `idleMs` pass or a request takes it. */
  park(): void {
    this.reused = true;
    this.idling = true;
    // Two phases: UNREF_AFTER_MS (or idleMs when shorter) still ref'd, then unref'd for the rest
    // of idleMs. A connection taken within the first phase (the busy case) is never unref'd.
    const first = this.unrefd ? this.idleMs : Math.min(UNREF_AFTER_MS, this.idleMs);
    this.armIdle(first);
  }

  private armIdle(ms: number): void {
    if (this.idleTimer !== null && this.idleTimerMs === ms) this.idleTimer.refresh();
    else {
      if (this.idleTimer !== null) clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(idleExpired, ms, this);
      this.idleTimer.unref();
      this.idleTimerMs = ms;
    }
  }

  /**
   * The idle timer fired: if the connection is still parked, the first phase unrefs its socket
   * and waits out the rest of idleMs; the second (or a first as long as idleMs) closes it.
   */
  idleExpired(): void {
    if (!this.idling) return;
    if (!this.unrefd) {
      this.unrefd = true;
      this.socket.unref();
      const rest = this.idleMs - this.idleTimerMs;
      if (rest > 0) {
        this.armIdle(rest);
        return;
      }
    }
    this.destroy(null);
  }

  private onEnd(): void {
    if (this.dead) return;
    const call = this.call;
    if (call === null || this.complete) {
      this.destroy(null);
      return;
    }
    // EOF: ends a body that runs to the close; anywhere else the response is cut short.
    this.inExecute = true;
    const r = this.parser.finish();
    this.inExecute = false;
    if (this.dead) return;
    if (r instanceof Error || !this.complete || this.failure) {
      this.gone(call, this.failure ?? closedError(r));
      return;
    }
    this.keepAlive = false;
    this.progress(call);
  }

  private onSocketGone(e: Error | null): void {
    if (this.dead) return;
    const call = this.call;
    if (call === null) {
      this.destroy(null);
      return;
    }
    this.gone(call, e === null ? closedError() : socketError(e));
  }

  /** The upstream went away during `call`: a retry when allowed, else the call fails. */
  private gone(call: Call, err: TurretError): void {
    if (!this.gotByte && this.reused && call.retryable && !call.ending.aborted) {
      call.retried = true;
      this.call = null;
      call.conn = null;
      // The new connection takes this one's place in the bound before this one is dropped.
      this.pool.retry(call);
      this.destroy(null);
      return;
    }
    this.destroy(err);
  }

  // ---- the request ----

  /** Sends `call`'s request on this (idle or new) connection. */
  send(call: Call): void {
    this.idling = false;
    if (this.unrefd) {
      this.unrefd = false;
      this.socket.ref();
    }
    this.call = call;
    call.conn = this;
    const req = call.req;
    const body = req.body;
    let head: string;
    try {
      // A streamed body that already failed (a body check refused it while the request waited
      // for its connection) would never end: nothing is sent.
      if (body instanceof Readable && (body.destroyed || body.errored !== null)) throw bodyFailure(body.errored, call.ending);
      if (body === undefined) head = headOf(req, EXPECTS_PAYLOAD.has(req.method) ? 0 : null, false);
      else if (typeof body === 'string' || Buffer.isBuffer(body)) head = headOf(req, Buffer.byteLength(body), false);
      else head = headOf(req, req.length === undefined ? null : Number(req.length), req.length === undefined);
    } catch (e) {
      // Nothing was written: the connection stays good.
      this.call = null;
      call.conn = null;
      this.pool.idled(this);
      call.fail(e as Error);
      return;
    }
    this.startTimer('headers');
    if (body === undefined) {
      this.uploaded = true;
      this.socket.write(head, 'latin1');
    } else if (typeof body === 'string' || Buffer.isBuffer(body)) {
      this.uploaded = true;
      const b = typeof body === 'string' ? Buffer.from(body) : body;
      this.socket.write(b.length === 0 ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), b]));
    } else {
      this.socket.write(head, 'latin1');
      this.upload(call, body, req.length === undefined);
    }
  }

  /** A streamed request body, with the socket's backpressure; chunked when its length is unknown. */
  private upload(call: Call, body: Readable, chunked: boolean): void {
    const socket = this.socket;
    const onDrain = (): void => {
      body.resume();
    };
    const cleanup = (): void => {
      body.off('data', onData).off('end', onEnd).off('error', onError);
      socket.off('drain', onDrain);
    };
    const onData = (c: Buffer | string): void => {
      if (this.dead || this.call !== call) return cleanup();
      const b = typeof c === 'string' ? Buffer.from(c) : c;
      if (b.length === 0) return;
      if (this.timerKind === 'headers') this.headersTimer?.refresh();
      const ok = chunked ? socket.write(Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`, 'latin1'), b, CRLF])) : socket.write(b);
      if (!ok) {
        body.pause();
        socket.once('drain', onDrain);
      }
    };
    const onEnd = (): void => {
      cleanup();
      this.uploading = null;
      if (this.dead || this.call !== call) return;
      if (chunked) socket.write(LAST_CHUNK);
      this.uploaded = true;
      if (this.timerKind === 'headers') this.headersTimer?.refresh();
    };
    const onError = (e: Error): void => {
      cleanup();
      this.uploading = null;
      // The body failed (the client went away, a body check refused it): the upstream must not
      // take what was sent as a whole request.
      if (this.call === call) this.destroy(bodyFailure(e, call.ending));
    };
    body.on('data', onData).once('end', onEnd).once('error', onError);
    this.uploading = () => {
      cleanup();
      // The upstream will take no more (it answered early, closed or reset): the rest of the
      // body is read and dropped, not destroyed. Destroying it would end the client's request
      // unfinished, and the exchange would be blamed on the client (client_closed), who closed
      // nothing; the answer (the upstream's, or 502 upstream_closed) still reaches it.
      body.on('error', ignore);
      body.resume();
    };
  }

  // ---- timers ----

  private startTimer(kind: 'headers' | 'body'): void {
    this.timerKind = null;
    if (kind === 'headers') {
      const ms = this.pool.timeouts.headersMs;
      if (ms <= 0) return;
      this.headersTimer = armed(this.headersTimer, headersTimedOut, ms, this);
    } else {
      const ms = this.pool.timeouts.bodyMs;
      if (ms <= 0) return;
      this.bodyTimer = armed(this.bodyTimer, bodyTimedOut, ms, this);
    }
    this.timerKind = kind;
  }

  /** Disarms the headers or body timer (it stays made, to be refreshed for the next one). */
  private stopTimer(): void {
    this.timerKind = null;
  }

  /** The `kind` timer fired: the upstream stayed silent past it, if it was armed. */
  timedOut(kind: 'headers' | 'body'): void {
    if (this.timerKind !== kind) return;
    this.timerKind = null;
    if (this.dead || this.call === null) return;
    this.destroy(
      new TurretError(
        'upstream_timeout',
        kind === 'headers' ? 'the upstream sent no response head in time (upstream_headers_timeout)' : 'the upstream body paused too long (upstream_idle_timeout)',
      ),
    );
  }

  /** The body's reader wants more. */
  resumeReading(): void {
    if (!this.paused || this.dead) return;
    this.paused = false;
    this.startTimer('body');
    this.readStart();
  }

  /** The body's reader gave up before its end. */
  abandon(): void {
    const call = this.call;
    if (call !== null) call.body = null;
    this.destroy(null);
  }

  private resetMessage(): void {
    this.flushed = [];
    this.status = 0;
    this.headFields = null;
    this.keepAlive = false;
    this.interim = false;
    this.complete = false;
    this.after = false;
    this.delivered = false;
    this.gotByte = false;
    this.uploaded = false;
    this.chunk = null;
    this.chunks = null;
    this.trailers = null;
    this.failure = null;
    // The last chunk of a body may have paused the socket (its reader was behind) in the read
    // that also completed the response: the next response must be read.
    if (this.paused) {
      this.paused = false;
      this.readStart();
    }
  }

  /**
   * Stops reading the socket (the body's reader is behind). A consumed stream is stopped at its
   * handle (what node:http's onSocketPause does): the socket's Readable sees no reads to stop.
   */
  private readStop(): void {
    const h = this.handle;
    if (h === null) this.socket.pause();
    else if (h.reading) {
      h.reading = false;
      h.readStop();
    }
  }

  private readStart(): void {
    const h = this.handle;
    if (h === null) this.socket.resume();
    else if (!h.reading) {
      h.reading = true;
      h.readStart();
    }
  }

  /** Closes the connection; its request (if any) fails with `err` (or the upstream's close). */
  destroy(err: Error | null): void {
    if (this.dead) return;
    this.dead = true;
    this.timerKind = null;
    this.idling = false;
    if (this.headersTimer !== null) clearTimeout(this.headersTimer);
    if (this.bodyTimer !== null) clearTimeout(this.bodyTimer);
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.headersTimer = null;
    this.bodyTimer = null;
    this.idleTimer = null;
    // The parser stops reading the stream before the socket goes (as node:http's freeParser).
    if (this.handle !== null) this.parser.unconsume();
    this.socket.destroy();
    const up = this.uploading;
    this.uploading = null;
    up?.();
    // Not from inside one of the parser's own callbacks (it would be freed under its feet): a
    // consumed stream runs them from C++, where this cannot tell, so such a parser always waits.
    if (this.inExecute || this.handle !== null) setImmediate(closeParser, this.parser);
    else this.parser.close();
    const call = this.call;
    this.call = null;
    this.pool.dropped(this);
    if (call !== null) {
      call.conn = null;
      call.fail(err ?? closedError());
    }
  }
}

/** Why a request body failed: its own TurretError, the exchange's ending, or the client's close. */
function bodyFailure(e: unknown, ending: ExchangeEnding): Error {
  if (isTurretError(e)) return e;
  return ending.reason ?? new TurretError('client_closed', 'the request body ended early', e ? { cause: e } : {});
}

function ignore(): void {}

function closeParser(p: Parser): void {
  p.close();
}

/**
 * How long a parked connection keeps its socket ref'd (upstream-h1.ts park): a process whose only
 * handles are parked connections exits this much later than it would with the socket unref'd at
 * once.
 */
export const UNREF_AFTER_MS = 50;

function idleExpired(c: H1Conn): void {
  c.idleExpired();
}

function headersTimedOut(c: H1Conn): void {
  c.timedOut('headers');
}

function bodyTimedOut(c: H1Conn): void {
  c.timedOut('body');
}

/** `t` re-armed for its duration from now, or a new (unref'd) timer when there is none yet. */
function armed(t: NodeJS.Timeout | null, f: (c: H1Conn) => void, ms: number, c: H1Conn): NodeJS.Timeout {
  if (t !== null) return t.refresh();
  const n = setTimeout(f, ms, c);
  n.unref();
  return n;
}

/** What of a stream handle (a TLSWrap or TCP) this module uses; node:http reads the same. */
interface StreamHandle {
  isStreamBase?: boolean;
  _consumed?: boolean;
  reading?: boolean;
  readStart(): number;
  readStop(): number;
}
