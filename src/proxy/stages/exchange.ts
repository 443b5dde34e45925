/**
 * One request/response exchange as it moves through the pipeline. Stages fill it in; `finish`
 * turns it into the audit record and metrics. Nothing here holds a secret value.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { ApprovalNote } from '../../audit/record.js';
import { TurretError } from '../../core/errors.js';
import type { Decision, Scheme } from '../../policy/types.js';
import type { Injection } from '../../secrets/inject.js';
import type { RequestInjection } from '../../secrets/request.js';
import type { PolicyState } from '../runtime.js';
import type { ExchangeEnding } from '../ending.js';

/**
 * A client's request as the stages read it: node:http's IncomingMessage (the proxy port, plain
 * transparent HTTP) or Turret's own (listen/h1-request.ts, inside intercepted tunnels). The body is
 * the request itself.
 */
export interface ClientRequest extends Readable {
  method?: string;
  url?: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  httpVersion: string;
  httpVersionMajor: number;
  httpVersionMinor: number;
  /** The parser reached the end of the message. */
  complete: boolean;
  readonly socket: Socket;
}

/** The response to a ClientRequest: node:http's ServerResponse or listen/h1-response.ts's. */
export interface ClientResponse extends EventEmitter {
  statusCode: number;
  shouldKeepAlive: boolean;
  readonly headersSent: boolean;
  readonly writableFinished: boolean;
  readonly writableNeedDrain: boolean;
  readonly destroyed: boolean;
  readonly socket: Socket | null;
  writeHead(statusCode: number, headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]): this;
  write(chunk: string | Buffer, cb?: (err?: Error | null) => void): boolean;
  end(cb?: () => void): this;
  end(chunk: string | Buffer | undefined, cb?: () => void): this;
  flushHeaders(): void;
  addTrailers(headers: OutgoingHttpHeaders | ReadonlyArray<[string, string]>): void;
  getHeader(name: string): number | string | string[] | undefined;
  destroy(error?: Error): this;
}

/** An intercepted CONNECT tunnel: requests inside it inherit its agent and must agree with its host. */
export interface Tunnel {
  id: string;
  agent: string;
  host: string;
  port: number;
  /** TLS SNI the client sent (canonical), or null when it sent none. */
  sni: string | null;
  /** Set when SNI disagreed with the CONNECT host: every request inside gets 421. */
  mismatch: string | null;
  client: string;
}

/** Where a request goes, in canonical form (the target stage fills it in). */
export interface ResolvedTarget {
  scheme: Scheme;
  host: string;
  port: number;
  /** Path and query (origin-form), starting with "/"; after inject, as sent upstream. */
  path: string;
}

export interface Exchange {
  id: string;
  started: bigint;
  /** Wall-clock start, ms since the epoch (Date.now(): no Date object per exchange). */
  time: number;
  req: ClientRequest;
  res: ClientResponse;
  tunnel: Tunnel | null;
  state: PolicyState;
  client: string;
  agent: string | null;
  target: ResolvedTarget | null;
  decision: Decision | null;
  /** Ends the exchange early with its cause (ending.ts); its signal aborts the upstream request. */
  ending: ExchangeEnding | null;
  /** The parser failed in this request's body (server.ts): it must never be forwarded. */
  malformed: boolean;
  /** What inject decided for the body (substitutions while it streams); forward applies it. */
  bodyPlan: RequestInjection | null;
  injections: Injection[];
  /** Headers to send upstream (after hop-by-hop removal and injection). */
  upstreamHeaders: Array<[string, string]>;
  status: number | null;
  bytesIn: number;
  bytesOut: number;
  redactions: number;
  error: TurretError | null;
  /** True once the response to the client has started (errors can then only abort). */
  responded: boolean;
  /** An `action: ask` request: how it was decided (written into the audit record). */
  approval: ApprovalNote | null;
  /** The request carried a known secret value (outbound.ts): the audit record raises an alert. */
  alert: { code: 'secret_in_request'; secret: string; where: string } | null;
  /** The running body check (outbound.ts), for the refusal that says how much of the body was sent. */
  outbound: { sent(): number; refusal(f: { secret: string; where: string }): TurretError } | null;
  /** An MCP tools/list answer to filter to the tools the rule allows (proxy/stages/mcp-filter.ts). */
  toolFilter: { ids: unknown[]; tools: ReadonlySet<string> } | null;
}

export function newExchange(req: ClientRequest, res: ClientResponse, tunnel: Tunnel | null, state: PolicyState): Exchange {
  return {
    id: newId(),
    started: process.hrtime.bigint(),
    time: Date.now(),
    req,
    res,
    tunnel,
    state,
    client: tunnel?.client ?? `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`,
    agent: tunnel?.agent ?? null,
    target: null,
    decision: null,
    ending: null,
    malformed: false,
    bodyPlan: null,
    injections: [],
    upstreamHeaders: [],
    status: null,
    bytesIn: 0,
    bytesOut: 0,
    redactions: 0,
    error: null,
    responded: false,
    approval: null,
    toolFilter: null,
    alert: null,
    outbound: null,
  };
}

/**
 * Exchange and tunnel ids: 16 hex characters, a random per-process prefix and a counter. They
 * label records for correlation (unique within a process, and across restarts and replicas
 * with 2^-32 odds per pair), and are not secrets: no check relies on them being unguessable.
 * A randomBytes call per exchange was 3-4% of a small request's CPU. The prefix and the
 * counter's first six hex digits are kept for 256 ids in a row, so an id is one concatenation
 * (~90 ns and 64 B instead of ~200 ns and ~150 B with toString and padStart each time,
 * docs/benchmarks.md "Thirteenth pass → auditfast2").
 */
export class IdSource {
  private prefix: string;
  /** prefix + the counter's first six hex digits (the same for 256 ids in a row). */
  private head = '';

  constructor(
    private counter = 0,
    private readonly fresh = (): string => randomBytes(4).toString('hex'),
  ) {
    this.prefix = fresh();
  }

  next(): string {
    const c = (this.counter = (this.counter + 1) >>> 0);
    if (c === 0) this.prefix = this.fresh(); // wrapped: a new prefix, never a repeat
    const low = c & 255;
    if (low === 0 || this.head === '') this.head = this.prefix + (c >>> 8).toString(16).padStart(6, '0');
    return this.head + HEX_BYTE[low]!;
  }
}

const HEX_BYTE = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const ids = new IdSource();

export function newId(): string {
  return ids.next();
}

/** An exchange past identify and target: the stages after them read these, never a default. */
export interface Routed extends Exchange {
  agent: string;
  target: ResolvedTarget;
}

export function routed(x: Exchange): Routed {
  if (x.agent === null || x.target === null) throw new TurretError('internal_error', 'a stage ran before identify and target');
  return x as Routed;
}

/** `scheme://host:port/path` for messages (query values stripped by the caller), or null before target. */
export function targetUrl(t: ResolvedTarget | null, strip: (p: string) => string): string | null {
  return t ? `${t.scheme}://${t.host}:${t.port}${strip(t.path)}` : null;
}
