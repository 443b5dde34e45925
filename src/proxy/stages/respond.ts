/**
 * The only place a refusal or failure becomes bytes for the client (tokenizer's model: one
 * function maps errors to HTTP). The body is short plain text meant for an agent and the model
 * behind it: what was refused, why, and that it is policy rather than a network fault. It is
 * scrubbed like everything else that leaves Turret.
 */
import type { ClientResponse } from './exchange.js';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import { isPolicyStatus, type TurretError } from '../../core/errors.js';

export interface DenialContext {
  method?: string | null;
  target?: string | null;
  scrub: (s: string) => string;
}

export function denialBody(err: TurretError, ctx: DenialContext): string {
  const what = ctx.method && ctx.target ? `${ctx.method} ${ctx.target}` : 'this request';
  const lines = [`Turret refused ${what}.`, `Reason: ${err.reason}`, `Code: ${err.code}${err.rule ? ` (rule ${err.rule})` : ''}`];
  if (err.status === 408) {
    lines.push('The request did not arrive in time; send it again on a new connection.');
  } else if (err.status === 407) {
    lines.push(
      'Authenticate to the proxy with your agent credential (the proxy URL from `turret env --agent NAME`), or, on a container network, connect from an address the rules assign to an agent.',
    );
  } else if (isPolicyStatus(err.status)) {
    lines.push(
      'This is a policy decision of the egress proxy, not a network fault: retrying, or reaching the host another way, will not help. Ask the operator to change the rules if this request is needed.',
    );
  } else {
    lines.push('This is a network failure between the proxy and the upstream, not a policy decision.');
  }
  try {
    return ctx.scrub(lines.join('\n') + '\n');
  } catch {
    // The scrubber failed (a WebAssembly trap, a bug): only Turret's own words, nothing the
    // agent or the upstream sent (the target, a reason quoting them), and still an answer.
    return `Turret refused this request.\nCode: ${err.code}\nThe details were withheld: the proxy's scrubber failed on them.\n`;
  }
}

function headersFor(err: TurretError, body: string): Record<string, string | number> {
  const h: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-turret-error': err.code,
    'cache-control': 'no-store',
  };
  if (err.status === 407) h['proxy-authenticate'] = 'Basic realm="turret"';
  // Set by the decide stage for rate_limited (RFC 9110 §10.2.3, delay in seconds).
  if (err.status === 429 && err.retryAfterS !== undefined) h['retry-after'] = err.retryAfterS;
  return h;
}

const CLOSE_AFTER = new Set([400, 408, 413, 414, 417, 421, 431]);

/** Answer an HTTP exchange with an error. If the response already started, abort it instead. */
export function sendError(res: ClientResponse, err: TurretError, ctx: DenialContext): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = denialBody(err, ctx);
  const headers = headersFor(err, body);
  // After malformed or oversized input the connection's framing cannot be trusted (or the body
  // was never read): close it rather than parse what follows as the next request.
  // shouldKeepAlive too: the field alone leaves it true (node:http reads the field into `_last`),
  // and the connection (listen/connection.ts) reads it to drop what was pipelined behind.
  if (CLOSE_AFTER.has(err.status)) {
    headers.connection = 'close';
    res.shouldKeepAlive = false;
  }
  res.writeHead(err.status, headers);
  res.end(ctx.method === 'HEAD' ? undefined : body);
}

/** Answer a raw socket (CONNECT before any HTTP server owns it) with an error and close it. */
export function sendErrorRaw(socket: Duplex, err: TurretError, ctx: DenialContext): void {
  const body = denialBody(err, ctx);
  const headers = headersFor(err, body);
  headers.connection = 'close';
  const head = [`HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  socket.end(`${head}\r\n\r\n${body}`);
}
