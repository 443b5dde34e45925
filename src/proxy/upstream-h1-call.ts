/**
 * The request side of the upstream HTTP/1.1 client (upstream-h1.ts has the whole design): the
 * request and answer types, the head a request is written with, the answer and its body stream,
 * and `Call`, one request through an origin pool from its queue to its end. H1Conn, the
 * connection's state machine, is upstream-h1.ts.
 */
import { Readable } from 'node:stream';
import type net from 'node:net';
import { TurretError, isTurretError } from '../core/errors.js';
import type { ExchangeEnding } from './ending.js';
import type { OriginPool } from './upstream-h1-pool.js';
import type { H1Conn } from './upstream-h1.js';

/** The largest response head (status line and fields), as undici's maxHeaderSize was. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** How long an idle connection is kept without a hint from the upstream. */
export const KEEP_ALIVE_MS = 4_000;
/** The most an upstream's `Keep-Alive: timeout` hint can keep a connection idle. */
export const KEEP_ALIVE_MAX_MS = 60_000;
/** Taken off the upstream's hint, so that Turret closes first. */
const KEEP_ALIVE_MARGIN_MS = 1_000;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** Methods whose request is sent with `content-length: 0` when it has no body (as undici did). */
export const EXPECTS_PAYLOAD = new Set(['POST', 'PUT', 'PATCH', 'QUERY']);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What a field value may hold (RFC 9110 §5.5 field-vchar, SP, HTAB, obs-text). */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** A request target: visible ASCII only. */
const BAD_TARGET = /[^\x21-\x7e]/;
export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
export const CRLF = Buffer.from('\r\n', 'latin1');

/** One request for the upstream. `headers` come from the pipeline (host first). */
export interface H1Request {
  method: string;
  path: string;
  headers: ReadonlyArray<readonly [string, string]>;
  body: Buffer | string | Readable | undefined;
  /** The body's length when known (a Readable with a Content-Length); a buffer's is its own. */
  length: string | undefined;
}

/** Response fields as undici gave them: lower-case names, a repeated field's values in an array. */
export type Fields = Record<string, string | string[] | undefined>;

/** What a request's owner is told: the answer, or why there is none. */
export type H1Callback = (err: Error | null, answer: H1Answer | null) => void;

/**
 * Builds the connection for a pool (upstream.ts: the guarded connect with this pool's rules);
 * `signal` aborts it when the pool is closed by force.
 */
export type Dial = (signal: AbortSignal) => Promise<net.Socket>;

export interface H1Timeouts {
  headersMs: number;
  bodyMs: number;
}

/**
 * A fields object: no Object.prototype in its chain, as node:http's `headers` (the names are the
 * upstream's, and a field named `constructor`, `toString` or `__proto__` must be a field like any
 * other, not a lookup that finds Object.prototype's member: a `constructor` field made the next
 * line call `push` on a function and stopped the process). Made by `new` from a constructor whose
 * prototype is an empty, frozen, null-prototype object rather than by Object.create(null), which
 * V8 keeps in dictionary mode: every lookup a hash probe and every for-in a fresh key list (1.5%
 * of the busy samples in fieldsOf and most of clientResponseHeaders' 2.0%, docs/benchmarks.md
 * "Twelfth pass"). Responses from one upstream share a hidden class, as Node's querystring
 * results do (the same construction).
 */
const FieldsObject = function FieldsObject(): void {} as unknown as new () => Fields;
FieldsObject.prototype = Object.freeze(Object.create(null) as object);

/**
 * Response field names most upstreams send, lower-case. Each is looked up as it is spelled on the
 * wire in its two common forms (`content-type`, `Content-Type`), mapped to its lower-case literal.
 */
const COMMON_NAMES = [
  'accept-ranges',
  'access-control-allow-credentials',
  'access-control-allow-headers',
  'access-control-allow-methods',
  'access-control-allow-origin',
  'access-control-expose-headers',
  'age',
  'alt-svc',
  'cache-control',
  'connection',
  'content-disposition',
  'content-encoding',
  'content-language',
  'content-length',
  'content-security-policy',
  'content-type',
  'date',
  'etag',
  'expires',
  'keep-alive',
  'last-modified',
  'link',
  'location',
  'pragma',
  'proxy-connection',
  'referrer-policy',
  'retry-after',
  'server',
  'set-cookie',
  'strict-transport-security',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'vary',
  'via',
  'www-authenticate',
  'x-content-type-options',
  'x-frame-options',
  'x-powered-by',
  'x-request-id',
];

/** `Content-Type` for `content-type`: each word's first letter upper-case. */
export function canonicalCase(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/**
 * A wire spelling of a common name → its lower-case literal. The literal is an internalized string
 * (V8's string table), so the fields object's keyed loads and stores find it at once; a name
 * lower-cased per response is a new string, which each keyed access first looks up in the string
 * table (~3/4 of fieldsOf's time for a typical 5-field head). A fixed table: nothing the upstream
 * sends is kept (a field name may carry a reflected secret); any other spelling is lower-cased.
 */
export const LOWER_NAMES: ReadonlyMap<string, string> = new Map(COMMON_NAMES.flatMap((n) => [[n, n] as const, [canonicalCase(n), n] as const]));

/** No fields (the trailers of nearly every response): one frozen object for all, never written. */
export const NO_FIELDS: Fields = Object.freeze(new FieldsObject());

/** Fields from llhttp's flat [name, value, …] list (values as the parser read them, latin1). */
export function fieldsOf(flat: readonly string[]): Fields {
  const out = new FieldsObject();
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const raw = flat[i] as string;
    const k = LOWER_NAMES.get(raw) ?? raw.toLowerCase();
    const v = flat[i + 1] as string;
    const had = out[k];
    if (had === undefined) out[k] = v;
    else if (typeof had === 'string') out[k] = [had, v];
    else had.push(v);
  }
  return out;
}

/** The idle time the upstream's `Keep-Alive: timeout=N` allows (less the margin), or the default. */
export function keepAliveMs(v: string | string[] | undefined): number {
  if (v === undefined) return KEEP_ALIVE_MS;
  const m = /(?:^|[\s,])timeout\s*=\s*(\d+)/i.exec(Array.isArray(v) ? v.join(',') : v);
  if (!m) return KEEP_ALIVE_MS;
  return Math.min(KEEP_ALIVE_MAX_MS, Number(m[1]) * 1000 - KEEP_ALIVE_MARGIN_MS);
}

export function protocolError(reason: string, cause?: unknown): TurretError {
  return new TurretError('upstream_protocol_error', `the upstream sent an invalid response (${reason})`, cause === undefined ? {} : { cause });
}

export function closedError(cause?: unknown): TurretError {
  return new TurretError('upstream_closed', 'the upstream closed the connection before its response was complete', cause === undefined ? {} : { cause });
}

/** A socket error as a cause: resets and broken pipes are the upstream closing. */
export function socketError(e: unknown): TurretError {
  if (isTurretError(e)) return e;
  const code = (e as { code?: string }).code ?? '';
  if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL')) return new TurretError('upstream_tls_failed', `TLS with the upstream failed (${code})`, { cause: e });
  return closedError(e);
}

/** The request head (with its framing fields) as one latin1 string; throws on a field that could split it. */
export function headOf(req: H1Request, bodyLength: number | null, chunked: boolean): string {
  if (BAD_TARGET.test(req.path) || !TOKEN.test(req.method)) throw new TurretError('bad_request', 'the request target cannot be sent upstream');
  let h = `${req.method} ${req.path} HTTP/1.1\r\n`;
  const headers = req.headers;
  let rest = '';
  let host = '';
  for (let i = 0; i < headers.length; i++) {
    const f = headers[i] as readonly [string, string];
    const k = f[0];
    const v = f[1];
    if (!TOKEN.test(k) || BAD_VALUE.test(v)) throw new TurretError('bad_request', `the request field ${TOKEN.test(k) ? k : '(a name)'} cannot be sent upstream`);
    // The framing is this function's alone (whatever the caller passes): a second length, a
    // transfer coding or a second Host beside the ones written here would let the upstream read
    // another request boundary than the one sent.
    const n = k.length;
    if (n === 4 || n === 10 || n === 14 || n === 17) {
      const lk = k.toLowerCase();
      if (lk === 'host') {
        if (host === '') host = `host: ${v}\r\n`;
        continue;
      }
      if (lk === 'connection' || lk === 'content-length' || lk === 'transfer-encoding') continue;
    }
    rest += `${k}: ${v}\r\n`;
  }
  h += host;
  h += 'connection: keep-alive\r\n';
  h += rest;
  if (chunked) h += 'transfer-encoding: chunked\r\n';
  else if (bodyLength !== null) h += `content-length: ${bodyLength}\r\n`;
  return `${h}\r\n`;
}

/**
 * The answer to one request. `whole` is the body when the response completed in the same read
 * as its head (then `body` is made only if asked for); otherwise `body` streams it.
 */
export class H1Answer {
  /** Set when the body has ended (the response's trailers, possibly empty). */
  trailers: Fields | null = null;
  private stream: H1Body | null;

  constructor(
    readonly statusCode: number,
    readonly headers: Fields,
    readonly whole: Buffer | null,
    stream: H1Body | null,
  ) {
    this.stream = stream;
  }

  get body(): Readable {
    if (this.stream === null) {
      const s = new H1Body(null);
      if (this.whole !== null && this.whole.length > 0) s.push(this.whole);
      s.push(null);
      this.stream = s;
    }
    return this.stream;
  }
}

/** A response body still arriving: pauses the connection while its reader is behind. */
export class H1Body extends Readable {
  constructor(public conn: H1Conn | null) {
    // Four TLS records' worth before the connection pauses (as undici's body held): fewer
    // pause/resume turns on a large download.
    super({ highWaterMark: 64 * 1024 });
  }

  override _read(): void {
    this.conn?.resumeReading();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    // Destroyed before its end: the rest of the response will not be read, so the connection
    // cannot carry another request.
    const c = this.conn;
    this.conn = null;
    if (c !== null) c.abandon();
    cb(err);
  }
}

/** One request through a pool: queued, then on a connection. */
export class Call {
  conn: H1Conn | null = null;
  retried = false;
  settled = false;
  /** The body stream once the head was handed over (null for a whole body). */
  body: H1Body | null = null;
  answer: H1Answer | null = null;
  readonly onAbort: () => void;

  constructor(
    readonly pool: OriginPool,
    readonly req: H1Request,
    readonly ending: ExchangeEnding,
    readonly bound: { clear(): void } | null,
    readonly cb: H1Callback,
  ) {
    this.onAbort = () => this.aborted();
  }

  /** May this request be sent again after a reused connection closed before answering? */
  get retryable(): boolean {
    const b = this.req.body;
    return !this.retried && IDEMPOTENT.has(this.req.method) && (b === undefined || typeof b === 'string' || Buffer.isBuffer(b));
  }

  /** The head (and a whole body) arrived: handed over to the owner. */
  answered(a: H1Answer): void {
    if (this.settled) return;
    this.answer = a;
    this.settled = true;
    if (a.whole !== null) this.ending.removeListener('abort', this.onAbort);
    this.cb(null, a);
  }

  /** Failed before or after the head: the owner (or the body's reader) learns why, once. */
  fail(err: Error): void {
    this.ending.removeListener('abort', this.onAbort);
    if (!this.settled) {
      this.settled = true;
      this.pool.unqueue(this);
      this.cb(err, null);
      return;
    }
    const b = this.body;
    this.body = null;
    if (b !== null) {
      b.conn = null;
      if (!b.destroyed) b.destroy(err);
    }
  }

  /** The body ended normally. */
  ended(): void {
    this.ending.removeListener('abort', this.onAbort);
    const b = this.body;
    this.body = null;
    if (b !== null) {
      b.conn = null;
      b.push(null);
    }
  }

  /** The exchange ended (client gone, timeouts, drain, queue bound): stop here with its cause. */
  private aborted(): void {
    const reason = this.ending.reason ?? new TurretError('client_closed');
    const c = this.conn;
    if (c !== null) c.destroy(reason);
    else this.fail(reason);
  }
}
