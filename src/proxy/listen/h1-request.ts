/**
 * A request read by Turret's own HTTP/1.1 server (h1-server.ts) on a decrypted connection: the
 * part of node:http's IncomingMessage the stages use, with its semantics. Its body is the stream
 * itself, filled by the parser (`push`), and its headers object is built by IncomingMessage's own
 * `_addHeaderLine` (duplicates dropped, joined with ", " or "; ", Set-Cookie an array: exactly as
 * `req.headers` of node:http), so every stage reads what it read before.
 */
import { IncomingMessage, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { finished, Readable } from 'node:stream';

/** What the request needs of its connection: read more of the socket (the body is being read). */
export interface RequestSource {
  readStart(): void;
}

type AddHeaderLine = (this: { joinDuplicateHeaders: boolean }, field: string, value: string, dest: Record<string, unknown>) => void;
const addHeaderLine = (IncomingMessage.prototype as unknown as { _addHeaderLine: AddHeaderLine })._addHeaderLine;
const NO_JOIN = { joinDuplicateHeaders: false };

/** `_addHeaderLine` is what node:http's headers rest on: checked once, at start-up (h1-server.ts). */
export function checkHeaderLines(): string | null {
  if (typeof addHeaderLine !== 'function') return 'IncomingMessage.prototype._addHeaderLine is not a function';
  const h: Record<string, unknown> = {};
  const lines = ['Host', 'a', 'host', 'b', 'Cookie', 'x=1', 'cookie', 'y=2', 'Set-Cookie', 's', 'X-A', '1', 'x-a', '2'];
  for (let i = 0; i < lines.length; i += 2) addHeaderLine.call(NO_JOIN, lines[i] as string, lines[i + 1] as string, h);
  const got = JSON.stringify(h);
  const want = '{"host":"a","cookie":"x=1; y=2","set-cookie":["s"],"x-a":"1, 2"}';
  return got === want ? null : `_addHeaderLine built ${got}, expected ${want}`;
}

const NO_TRAILERS: IncomingHttpHeaders = Object.freeze({});
const NO_RAW_TRAILERS: string[] = Object.freeze([]) as unknown as string[];

/** Node's maxHeadersCount (2000 fields): req.headers holds at most that many, rawHeaders all. */
export const MAX_HEADER_PAIRS = 2000 * 2;

export class H1Request extends Readable {
  method: string;
  url: string;
  httpVersionMajor: number;
  httpVersionMinor: number;
  httpVersion: string;
  headers: IncomingHttpHeaders = {};
  rawHeaders: string[];
  /** Empty (one frozen object and list for every request) until a chunked body's trailer section arrives. */
  trailers: IncomingHttpHeaders = NO_TRAILERS;
  rawTrailers: string[] = NO_RAW_TRAILERS;
  /** The parser reached the end of this message. */
  complete = false;
  aborted = false;
  upgrade: boolean;
  readonly socket: Socket;
  /** Somebody reads the body (then it is not dumped when the response finishes). */
  _consuming = false;
  /** The body is thrown away unread (the response finished first, as node:http does). */
  _dumped = false;

  constructor(
    socket: Socket,
    private readonly source: RequestSource,
    major: number,
    minor: number,
    method: string,
    url: string,
    raw: string[],
    upgrade: boolean,
  ) {
    super({ highWaterMark: socket.readableHighWaterMark });
    (this as unknown as { _readableState: { readingMore: boolean } })._readableState.readingMore = true;
    this.socket = socket;
    this.httpVersionMajor = major;
    this.httpVersionMinor = minor;
    this.httpVersion = major === 1 && minor === 1 ? '1.1' : `${major}.${minor}`;
    this.method = method;
    this.url = url;
    this.upgrade = upgrade;
    this.rawHeaders = raw;
    const n = Math.min(raw.length, MAX_HEADER_PAIRS);
    const dest = this.headers as Record<string, unknown>;
    for (let i = 0; i < n; i += 2) addHeaderLine.call(NO_JOIN, raw[i] as string, raw[i + 1] as string, dest);
  }

  get connection(): Socket {
    return this.socket;
  }

  /** Trailer fields of a chunked body. */
  addTrailers(raw: string[]): void {
    this.rawTrailers = raw;
    const dest: Record<string, unknown> = {};
    this.trailers = dest as IncomingHttpHeaders;
    const n = Math.min(raw.length, MAX_HEADER_PAIRS);
    for (let i = 0; i < n; i += 2) addHeaderLine.call(NO_JOIN, raw[i] as string, raw[i + 1] as string, dest);
  }

  override _read(): void {
    if (!this._consuming) {
      (this as unknown as { _readableState: { readingMore: boolean } })._readableState.readingMore = false;
      this._consuming = true;
    }
    if (this.socket.readable) this.source.readStart();
  }

  /** Throw the unread body away so the next request can be parsed (IncomingMessage._dump). */
  _dump(): void {
    if (this._dumped) return;
    this._dumped = true;
    this.removeAllListeners('data');
    this.resume();
  }

  /**
   * As IncomingMessage: a request destroyed before its end aborts its connection (the rest of its
   * body cannot be skipped), and its error reaches 'error' listeners only when there are any.
   */
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (!this.readableEnded || !this.complete) {
      this.aborted = true;
      this.emit('aborted');
    }
    if (!this.socket.destroyed && this.aborted) {
      this.socket.destroy(err ?? undefined);
      const cleanup = finished(this.socket, (e) => {
        cleanup();
        process.nextTick(destroyed, this, (e as { code?: string } | undefined)?.code === 'ERR_STREAM_PREMATURE_CLOSE' ? err : (e ?? err), cb);
      });
    } else {
      // Every request ends here once its response closed: no closure per request (node:http's onError).
      process.nextTick(destroyed, this, err, cb);
    }
  }
}

/** The end of `_destroy`: its error reaches 'error' listeners only when there are any (IncomingMessage's onError). */
function destroyed(req: H1Request, err: Error | null, cb: (e?: Error | null) => void): void {
  cb(req.listenerCount('error') === 0 ? null : err);
}
