/**
 * A response written by Turret's own HTTP/1.1 server (h1-server.ts): node:http's ServerResponse
 * as the stages use it, with the same bytes on the wire and the same events, minus its machinery.
 * What it keeps from node:http, on purpose (docs/pipeline.md):
 *
 * - the head `writeHead` builds: the status line, the fields in the order given (names and values
 *   checked by node:http's own `validateHeaderName` / `validateHeaderValue`), then `Date`, then
 *   `Connection: keep-alive` + `Keep-Alive: timeout=30` or `Connection: close`, then
 *   `Transfer-Encoding: chunked` when a body of unknown length goes to an HTTP/1.1 client (an
 *   HTTP/1.0 one gets a close-delimited body); a response to HEAD, a 204, 304 or 1xx has no body;
 * - `headersSent` once writeHead ran; `writableFinished` once the last byte went to the socket;
 *   'finish' when it did (the connection frees the next response first), 'close' on the next tick
 *   or when the socket closes while this response is the one being sent; 'drain' after a write
 *   that returned false; `destroy()` destroys the socket (or, queued, the socket it gets);
 * - a response queued behind another (pipelining) keeps its bytes until its turn.
 *
 * What it does faster: the head and a body written with `end(body)` leave in one socket write, as
 * do a chunk and its chunked framing; no per-response listener on the socket.
 */
import { EventEmitter } from 'node:events';
import { STATUS_CODES, validateHeaderName } from 'node:http';
import type { Socket } from 'node:net';
import type { H1Request } from './h1-request.js';
import { buildHead, httpError, INVALID_CHAR, RE_TE_CHUNKED } from './h1-head.js';

/** What a response needs of its connection (h1-server.ts). */
export interface ResponseOwner {
  /** The response being sent on the socket (the first unfinished one), or null. */
  readonly current: H1Response | null;
  /** Bytes queued in responses waiting for their turn changed by `delta`. */
  pending(delta: number): void;
  /** The response's last byte was written: the connection moves on (node:http's resOnFinish). */
  finished(res: H1Response): void;
  readonly keepAliveTimeoutS: number;
}

type Encoding = BufferEncoding | null | undefined;
type Callback = ((err?: Error | null) => void) | null | undefined;
interface Queued {
  data: string | Buffer;
  encoding: Encoding;
  callback: Callback;
}

function byteLength(data: string | Buffer, encoding: Encoding): number {
  return typeof data === 'string' ? Buffer.byteLength(data, encoding ?? 'utf8') : data.length;
}

/**
 * `head` (latin1) then `data`, as one buffer: one socket write for the head and the first body
 * bytes. An empty piece is not written (each write is a call into C++).
 */
function joined(head: string, pre: string, data: string | Buffer, encoding: Encoding, post: string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, encoding ?? 'utf8') : data;
  const n = head.length + pre.length;
  const out = Buffer.allocUnsafe(n + body.length + post.length);
  if (head.length > 0) out.write(head, 0, 'latin1');
  if (pre.length > 0) out.write(pre, head.length, 'latin1');
  body.copy(out, n);
  if (post.length > 0) out.write(post, n + body.length, 'latin1');
  return out;
}

let lastStatus = 0;
let lastReason = '';
let lastStatusLine = '';
/** `HTTP/1.1 200 OK\r\n`: the last one made is made again only for another status or reason. */
function statusLine(statusCode: number, reason: string): string {
  if (statusCode !== lastStatus || reason !== lastReason) {
    lastStatusLine = `HTTP/1.1 ${statusCode} ${reason}\r\n`;
    lastStatus = statusCode;
    lastReason = reason;
  }
  return lastStatusLine;
}

export class H1Response extends EventEmitter {
  statusCode = 200;
  statusMessage = '';
  shouldKeepAlive = true;
  sendDate = true;
  chunkedEncoding = false;
  useChunkedEncodingByDefault = true;
  finished = false;
  destroyed = false;
  errored: Error | null = null;
  socket: Socket | null = null;
  _last = false;
  _closed = false;
  _hasBody = true;
  _header: string | null = null;
  _headerSent = false;
  _trailer = '';
  _contentLength: number | null = null;
  _expect_continue = false;
  _sent100 = false;
  defaultKeepAlive = true;
  private needDrain = false;
  private outputData: Queued[] = [];
  private outputSize = 0;

  constructor(
    readonly req: H1Request,
    private readonly owner: ResponseOwner,
    private readonly highWaterMark: number,
  ) {
    super();
    if (req.method === 'HEAD') this._hasBody = false;
    if (req.httpVersionMajor < 1 || req.httpVersionMinor < 1) {
      this.useChunkedEncodingByDefault = RE_TE_CHUNKED.test(String(req.headers.te ?? ''));
      this.shouldKeepAlive = false;
    }
  }

  get connection(): Socket | null {
    return this.socket;
  }

  get headersSent(): boolean {
    return this._header !== null;
  }

  get writableEnded(): boolean {
    return this.finished;
  }

  get writableLength(): number {
    return this.outputSize + (this.socket ? this.socket.writableLength : 0);
  }

  get writableFinished(): boolean {
    return this.finished && this.outputSize === 0 && (this.socket === null || this.socket.writableLength === 0);
  }

  get writableNeedDrain(): boolean {
    return !this.destroyed && !this.finished && this.needDrain;
  }

  /** Fields are only ever given to writeHead (no setHeader): as node:http then, nothing to read back. */
  getHeader(_name: string): undefined {
    return undefined;
  }

  writeHead(statusCode: number, reason?: string | Record<string, unknown> | unknown[], obj?: Record<string, unknown> | unknown[]): this {
    if (this._header !== null) throw httpError('ERR_HTTP_HEADERS_SENT', 'Cannot write headers after they are sent to the client');
    const original = statusCode;
    statusCode |= 0;
    if (statusCode < 100 || statusCode > 999) throw httpError('ERR_HTTP_INVALID_STATUS_CODE', `Invalid status code: ${String(original)}`, RangeError);
    let headers: Record<string, unknown> | unknown[] | undefined;
    if (typeof reason === 'string') {
      this.statusMessage = reason;
      headers = obj;
    } else {
      if (!this.statusMessage) this.statusMessage = STATUS_CODES[statusCode] ?? 'unknown';
      headers = obj ?? reason;
    }
    this.statusCode = statusCode;
    if (INVALID_CHAR.test(this.statusMessage)) throw httpError('ERR_INVALID_CHAR', 'Invalid character in statusMessage', TypeError);
    if (statusCode === 204 || statusCode === 304 || (statusCode >= 100 && statusCode <= 199)) this._hasBody = false;
    if (this._expect_continue && !this._sent100) this.shouldKeepAlive = false;
    this._header = buildHead(this, statusLine(statusCode, this.statusMessage), headers, this.owner.keepAliveTimeoutS);
    this._headerSent = false;
    return this;
  }

  writeContinue(cb?: Callback): void {
    this.writeRaw('HTTP/1.1 100 Continue\r\n\r\n', 'latin1', cb);
    this._sent100 = true;
  }

  flushHeaders(): void {
    if (this._header === null) this.writeHead(this.statusCode);
    this.send('', undefined, null);
  }

  addTrailers(headers: Record<string, unknown> | Array<[string, unknown]>): void {
    this._trailer = '';
    const entries: Array<[string, unknown]> = Array.isArray(headers) ? headers : Object.entries(headers);
    for (const [field, v] of entries) {
      validateHeaderName(field);
      const values = Array.isArray(v) && v.length > 1 ? v : [Array.isArray(v) ? v.join('; ') : v];
      for (const value of values) {
        if (INVALID_CHAR.test(String(value))) throw httpError('ERR_INVALID_CHAR', `Invalid character in trailer content ["${field}"]`, TypeError);
        this._trailer += field + ': ' + String(value) + '\r\n';
      }
    }
  }

  write(chunk: string | Buffer, encoding?: Encoding | Callback, cb?: Callback): boolean {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = null;
    }
    const ret = this.write_(chunk, encoding as Encoding, cb, false);
    if (!ret) this.needDrain = true;
    return ret;
  }

  private write_(chunk: string | Buffer, encoding: Encoding, cb: Callback, fromEnd: boolean): boolean {
    const callback = typeof cb === 'function' ? cb : null;
    if (chunk === null) throw httpError('ERR_STREAM_NULL_VALUES', 'May not write null values to stream', TypeError);
    if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
      throw httpError('ERR_INVALID_ARG_TYPE', 'The "chunk" argument must be of type string or an instance of Buffer or Uint8Array', TypeError);
    }
    if (this.finished || this.destroyed) {
      const err = this.finished ? httpError('ERR_STREAM_WRITE_AFTER_END', 'write after end') : httpError('ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed');
      if (!this.destroyed) this.onError(err, callback);
      else process.nextTick(() => callback?.(err));
      return false;
    }
    if (this._header === null) {
      if (fromEnd) this._contentLength = byteLength(chunk, encoding);
      this.writeHead(this.statusCode);
    }
    if (!this._hasBody) {
      if (callback) process.nextTick(callback);
      return true;
    }
    const data = chunk;
    if (this.chunkedEncoding && data.length !== 0) {
      const len = byteLength(data, encoding);
      return this.sendFramed(`${len.toString(16)}\r\n`, data, encoding, '\r\n', callback);
    }
    return this.send(data, encoding, callback);
  }

  private onError(err: Error, callback: Callback): void {
    if (this.destroyed) return;
    process.nextTick(() => {
      callback?.(err);
      if (!this.destroyed) this.emit('error', err);
    });
  }

  end(chunk?: string | Buffer | Callback, encoding?: Encoding | Callback, callback?: Callback): this {
    if (typeof chunk === 'function') {
      callback = chunk;
      chunk = undefined;
      encoding = undefined;
    } else if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    const enc = encoding as Encoding;
    const finish = (): void => this.onFinish();
    if (chunk) {
      if (this.finished) {
        this.onError(httpError('ERR_STREAM_WRITE_AFTER_END', 'write after end'), typeof callback === 'function' ? callback : null);
        return this;
      }
      if (typeof callback === 'function') this.once('finish', callback);
      this.finished = true;
      this.endWith(chunk, enc, finish);
    } else if (this.finished) {
      if (typeof callback === 'function') {
        if (!this.writableFinished) this.on('finish', callback);
        else callback(httpError('ERR_STREAM_ALREADY_FINISHED', 'Cannot call end after a stream was finished'));
      }
      return this;
    } else {
      if (this._header === null) {
        this._contentLength = 0;
        this.writeHead(this.statusCode);
      }
      if (typeof callback === 'function') this.once('finish', callback);
      this.finished = true;
      if (this._hasBody && this.chunkedEncoding) this.send('0\r\n' + this._trailer + '\r\n', 'latin1', finish);
      else if (!this._headerSent || this.writableLength > 0) this.send('', 'latin1', finish);
      else process.nextTick(finish);
    }
    return this;
  }

  /** end(chunk): the chunk, and the chunked terminator when framed, in one write with the 'finish' callback. */
  private endWith(chunk: string | Buffer, encoding: Encoding, finish: () => void): void {
    if (this._header === null) {
      this._contentLength = byteLength(chunk, encoding);
      this.writeHead(this.statusCode);
    }
    if (!this._hasBody) {
      this.send('', 'latin1', finish);
      return;
    }
    if (this.chunkedEncoding) {
      const len = byteLength(chunk, encoding);
      if (len === 0) this.send('0\r\n' + this._trailer + '\r\n', 'latin1', finish);
      else this.sendFramed(`${len.toString(16)}\r\n`, chunk, encoding, '\r\n0\r\n' + this._trailer + '\r\n', finish);
      return;
    }
    this.send(chunk, encoding, finish);
  }

  /** `pre` + data + `post` (latin1 framing), with the head first if it has not left yet. */
  private sendFramed(pre: string, data: string | Buffer, encoding: Encoding, post: string, cb: Callback): boolean {
    const head = this.takeHead();
    return this.writeRaw(joined(head, pre, data, encoding, post), null, cb);
  }

  /** node:http's _send: the head goes with the first data (one string, or one buffer here). */
  private send(data: string | Buffer, encoding: Encoding, cb: Callback): boolean {
    if (!this._headerSent && this._header !== null) {
      const head = this.takeHead();
      if (typeof data === 'string' && (encoding === 'utf8' || encoding === 'latin1' || !encoding)) data = head + data;
      else data = joined(head, '', data, encoding, '');
    }
    return this.writeRaw(data, encoding, cb);
  }

  private takeHead(): string {
    if (this._headerSent || this._header === null) return '';
    this._headerSent = true;
    return this._header;
  }

  private writeRaw(data: string | Buffer, encoding: Encoding, cb: Callback): boolean {
    const conn = this.socket;
    if (conn && conn.destroyed) return false;
    if (conn && this.owner.current === this && conn.writable) {
      if (this.outputData.length > 0) this.flushOutput(conn);
      return conn.write(data, encoding ?? 'utf8', cb ?? undefined);
    }
    this.outputData.push({ data, encoding, callback: cb });
    const n = data.length;
    this.outputSize += n;
    this.owner.pending(n);
    return this.outputSize < this.highWaterMark;
  }

  private flushOutput(socket: Socket): boolean {
    const out = this.outputData;
    if (out.length === 0) return true;
    socket.cork();
    let ret = true;
    for (const q of out) ret = socket.write(q.data, q.encoding ?? 'utf8', q.callback ?? undefined);
    socket.uncork();
    this.outputData = [];
    const size = this.outputSize;
    this.outputSize = 0;
    this.owner.pending(-size);
    return ret;
  }

  private onFinish(): void {
    const s = this.socket as (Socket & { _hadError?: boolean }) | null;
    if (s && s._hadError) return;
    this.owner.finished(this);
    this.emit('finish');
  }

  /** This response's turn on the socket (node:http's assignSocket + _flush). */
  assign(socket: Socket): void {
    this.socket = socket;
    this.emit('socket', socket);
    if (!socket.writable) return;
    const ret = this.flushOutput(socket);
    if (!this.finished && ret && this.needDrain) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  /** The socket drained while this response was being sent. */
  drained(): void {
    if (!this.finished && this.needDrain) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  /** Once, on the next tick after 'finish' or when the socket closes during this response. */
  closed(): void {
    if (this._closed) return;
    this.destroyed = true;
    this._closed = true;
    this.emit('close');
  }

  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.errored = err ?? null;
    if (this.socket) this.socket.destroy(err);
    else this.once('socket', (s: Socket) => s.destroy(err));
    return this;
  }
}
