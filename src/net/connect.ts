/**
 * The guarded connect: resolve once → classify every answer → dial only checked addresses.
 *
 * - Fail closed: if any answer is refused, nothing is dialled, even when another answer is public.
 *   A name that answers both is either misconfigured or a rebinding attempt.
 * - No time-of-check gap: the dialler is handed the literal address that was classified, and its
 *   `lookup` hook throws, so no code path below can resolve the name again.
 * - When a checked address does not answer, the next checked one is tried, alternating families.
 */
import net from 'node:net';
import tls from 'node:tls';
import { TurretError } from '../core/errors.js';
import { classify, isAllowedClass, type Classification } from './classify.js';
import type { HostKind } from './host.js';
import type { Resolver } from './resolver.js';

export { interfaceAddresses } from './self.js';

export interface GuardedConnectOptions {
  host: string;
  port: number;
  kind: HostKind;
  resolver: Resolver;
  permit?: (c: Classification) => boolean;
  selfAddresses?: ReadonlySet<string>;
  /**
   * TLS toward the upstream. Prefer `secureContext` built once (with the CA list and
   * minVersion TLSv1.2 inside): `ca` alone makes Node parse the whole CA list into a new
   * context on every connection (~30 ms for the system roots, measured in bench/peers.ts).
   */
  tls?: { servername: string; ca?: string | Buffer | Array<string | Buffer>; secureContext?: tls.SecureContext; ALPNProtocols?: string[] };
  timeoutMs?: number;
  onRefused?: (c: Classification) => void;
  /** Aborts resolution, dialling and the handshake (e.g. when the agent hangs up). */
  signal?: AbortSignal;
}

/** dest_address_forbidden, carrying the classification that decided (for audit and metrics). */
export class AddressForbiddenError extends TurretError {
  readonly classification: Classification;
  constructor(reason: string, classification: Classification) {
    super('dest_address_forbidden', reason);
    this.classification = classification;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const MIN_ATTEMPT_MS = 1_000; // an attempt gets at least this long (bounded by the deadline)

/**
 * Resolve (names) or take the literal (IP hosts), classify every address, and return those that
 * may be dialled, in answer order. Throws AddressForbiddenError when any address is refused.
 */
export async function checkAddresses(o: Pick<GuardedConnectOptions, 'host' | 'kind' | 'resolver' | 'permit' | 'selfAddresses' | 'onRefused'>): Promise<Classification[]> {
  const answers = o.kind === 'name' ? (await o.resolver.resolve(o.host)).map((a) => a.address) : [o.host];
  if (answers.length === 0) throw new TurretError('dns_failed', `could not resolve ${o.host}`);
  const checked: Classification[] = [];
  for (const address of answers) {
    let c: Classification;
    try {
      c = classify(address, o.selfAddresses ? { selfAddresses: o.selfAddresses } : {});
    } catch {
      throw new TurretError(o.kind === 'name' ? 'dns_failed' : 'bad_target', `${o.host}: not a valid IP address`);
    }
    if (!isAllowedClass(c.class) && !(o.permit?.(c) ?? false)) {
      o.onRefused?.(c);
      // The agent sees the class, never the internal address a name resolved to.
      const what = o.kind === 'name' ? `${o.host} resolves to a refused address` : `${c.address} is a refused address`;
      throw new AddressForbiddenError(`${what}: ${c.class}: ${c.reason}`, c);
    }
    checked.push(c);
  }
  return checked;
}

/** Interleave families, starting with the family of the first answer (RFC 8305 §4, simplified). */
export function orderCandidates<T extends { address: string }>(list: readonly T[]): T[] {
  const v6 = list.filter((c) => c.address.includes(':'));
  const v4 = list.filter((c) => !c.address.includes(':'));
  const [first, second] = list[0]?.address.includes(':') ? [v6, v4] : [v4, v6];
  const out: T[] = [];
  for (let i = 0; i < Math.max(first.length, second.length); i++) {
    const a = first[i];
    const b = second[i];
    if (a) out.push(a);
    if (b) out.push(b);
  }
  return out;
}

class DialFailure extends Error {
  constructor(
    readonly kind: 'timeout' | 'error' | 'aborted',
    readonly original?: unknown,
  ) {
    super(kind);
  }
}

// Handed to net.connect so that a literal address can never turn into a DNS query.
const noLookup: net.LookupFunction = (_host, _opts, cb) => {
  cb(new Error('guarded connect: the dialler must not resolve names'), '', 0);
};

function dialOne(address: string, port: number, ms: number, signal?: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const family = address.includes(':') ? 6 : 4;
    const socket = net.connect({ host: address, port, family, lookup: noLookup, autoSelectFamily: false });
    let done = false;
    const finish = (failure?: DialFailure): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.removeListener('error', onError);
      socket.removeListener('connect', onConnect);
      if (failure) {
        socket.destroy();
        reject(failure);
      } else resolve(socket);
    };
    const onError = (e: unknown): void => finish(new DialFailure('error', e));
    const onConnect = (): void => finish();
    const onAbort = (): void => finish(new DialFailure('aborted'));
    const timer = setTimeout(() => finish(new DialFailure('timeout')), ms);
    socket.once('error', onError);
    socket.once('connect', onConnect);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function handshake(socket: net.Socket, o: NonNullable<GuardedConnectOptions['tls']>, ms: number, signal?: AbortSignal): Promise<tls.TLSSocket> {
  const name = o.servername.replace(/^\[|\]$/g, '');
  const isIp = net.isIP(name) !== 0;
  return new Promise((resolve, reject) => {
    const t = tls.connect({
      socket,
      // SNI must not carry an IP (RFC 6066 §3); certificate checks still use `host`.
      ...(isIp ? {} : { servername: name }),
      host: name,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      ...(o.secureContext !== undefined ? { secureContext: o.secureContext } : o.ca !== undefined ? { ca: o.ca } : {}),
      ...(o.ALPNProtocols ? { ALPNProtocols: o.ALPNProtocols } : {}),
    });
    let done = false;
    const finish = (err?: TurretError): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      t.removeListener('error', onError);
      t.removeListener('secureConnect', onSecure);
      if (err) {
        t.destroy();
        socket.destroy();
        reject(err);
      } else resolve(t);
    };
    const onError = (e: unknown): void => {
      const code = typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : 'unknown';
      finish(new TurretError('upstream_tls_failed', `TLS with ${name} failed (${code})`, { cause: e }));
    };
    const onSecure = (): void => {
      // rejectUnauthorized already refused bad chains; checked again so a future option change cannot open it.
      if (!t.authorized) finish(new TurretError('upstream_tls_failed', `TLS with ${name} failed (certificate not verified)`));
      else finish();
    };
    const onAbort = (): void => finish(new TurretError('upstream_connect_failed', 'connect aborted'));
    const timer = setTimeout(() => finish(new TurretError('upstream_timeout', `TLS handshake with ${name} timed out`)), ms);
    t.once('error', onError);
    t.once('secureConnect', onSecure);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * `p`, unless the deadline passes first (upstream_timeout, `what`) or `signal` aborts (the pool's
 * forced close at shutdown): a resolver that does not answer then holds nothing up.
 */
async function beforeDeadline<T>(p: Promise<T>, deadline: number, what: string, signal: AbortSignal | undefined, aborted: () => TurretError): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const cut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TurretError('upstream_timeout', what)), Math.max(0, deadline - Date.now()));
    onAbort = () => reject(aborted());
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([p, cut]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/** Connect to a checked address of o.host; with o.tls, also handshake and verify. */
export async function guardedConnect(o: GuardedConnectOptions): Promise<net.Socket> {
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new TurretError('bad_target', 'port out of range');
  const deadline = Date.now() + (o.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const aborted = (): TurretError => new TurretError('upstream_connect_failed', 'connect aborted');
  if (o.signal?.aborted) throw aborted();

  const checked = await beforeDeadline(checkAddresses(o), deadline, `resolving ${o.host} timed out`, o.signal, aborted);
  const order = orderCandidates(checked);
  let socket: net.Socket | undefined;
  let timeouts = 0;
  for (let i = 0; i < order.length && !socket; i++) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const left = order.length - i;
    const budget = left > 1 ? Math.min(remaining, Math.max(MIN_ATTEMPT_MS, Math.floor(remaining / left))) : remaining;
    try {
      socket = await dialOne(order[i]!.address, o.port, budget, o.signal);
    } catch (e) {
      if (e instanceof DialFailure && e.kind === 'aborted') throw aborted();
      if (e instanceof DialFailure && e.kind === 'timeout') timeouts++;
      // No file descriptor for the socket: the proxy's own limit, not the upstream's fault, and
      // another address would fail the same way.
      const code = e instanceof DialFailure ? (e.original as { code?: string } | undefined)?.code : undefined;
      if (code === 'EMFILE' || code === 'ENFILE') {
        throw new TurretError('emfile', `the proxy has no file descriptor left to connect to ${o.host} port ${o.port} (${code})`);
      }
    }
  }
  if (!socket) {
    if (Date.now() >= deadline || timeouts === order.length) {
      throw new TurretError('upstream_timeout', `connecting to ${o.host} port ${o.port} timed out`);
    }
    throw new TurretError('upstream_connect_failed', `could not connect to ${o.host} port ${o.port}`);
  }
  if (!o.tls) return socket;
  return handshake(socket, o.tls, Math.max(1, deadline - Date.now()), o.signal);
}
