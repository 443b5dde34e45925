/**
 * The audit records Turret writes outside an exchange's own `finish` (stages/finish.ts): a
 * refusal of something that never became an exchange (a malformed head, a slow client, a refused
 * CONNECT or redirected connection), and a tunnel's open/close pair. Nothing else in proxy/ builds
 * a record, so every refusal gets the same fields, the same metric and the same outcome rule.
 */
import { isPolicyStatus, type TurretError } from '../core/errors.js';
import type { AuditEvent } from '../audit/record.js';
import type { TunnelMode } from '../metrics/metrics.js';
import type { Scheme } from '../policy/types.js';
import { ABORT_CODES } from './ending.js';
import type { Runtime } from './runtime.js';

/** The outcome of something that ended with `err` (or without an error): the one place the rule lives. */
export function outcomeOf(err: TurretError | null): 'completed' | 'denied' | 'failed' | 'aborted' {
  if (!err) return 'completed';
  if (ABORT_CODES.has(err.code)) return 'aborted';
  return isPolicyStatus(err.status) ? 'denied' : 'failed';
}

/** `address:port` of a client socket, as every record names it. */
export function clientOf(s: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return `${s.remoteAddress ?? '?'}:${s.remotePort ?? 0}`;
}

/** What is known about a refused request or tunnel when it was refused. */
export interface RefusalFacts {
  event?: Extract<AuditEvent, 'request' | 'tunnel_open'>;
  agent: string | null;
  client?: string | undefined;
  method?: string | undefined;
  scheme?: Scheme | undefined;
  host?: string | undefined;
  port?: number | undefined;
  tunnelId?: string | undefined;
}

/** One audit record and one metrics update for a refusal or failure outside an exchange. */
export function recordRefusal(rt: Runtime, err: TurretError, f: RefusalFacts): void {
  const outcome = outcomeOf(err);
  rt.audit.write({
    time: new Date().toISOString(),
    event: f.event ?? 'request',
    outcome,
    agent: f.agent,
    method: f.method,
    scheme: f.scheme,
    host: f.host,
    port: f.port,
    rule: err.rule ?? null,
    reason: err.reason,
    code: err.code,
    status: err.status,
    client: f.client,
    tunnel_id: f.tunnelId,
  });
  rt.metrics?.requests.inc({ agent: f.agent ?? 'unknown', decision: outcome, code: err.code });
}

/** An allowed tunnel, as its two records describe it. */
export interface TunnelFacts {
  id: string;
  agent: string;
  client: string;
  host: string;
  port: number;
  method?: string;
  mode: TunnelMode;
  rule: string | null;
  reason: string;
  /** Bytes relayed, for opaque (passthrough) tunnels; read when the tunnel closes. */
  bytes?: { in: number; out: number };
  /** Why the tunnel ended badly (the client's TLS handshake failed), read when it closes; null when it did not. */
  ending?: () => TurretError | null;
}

/**
 * The tunnel_open record (outcome allowed) and metrics now, and the tunnel_close record when
 * `socket` closes: the open/close pair every tunnel gets, whichever listener opened it.
 */
export function recordTunnel(rt: Runtime, t: TunnelFacts, socket: { once(event: 'close', f: () => void): unknown }): void {
  const started = process.hrtime.bigint();
  const base = { agent: t.agent, method: t.method, scheme: 'https' as const, host: t.host, port: t.port, client: t.client, tunnel_id: t.id };
  rt.audit.write({ time: new Date().toISOString(), event: 'tunnel_open', outcome: 'allowed', ...base, rule: t.rule, reason: t.reason });
  rt.metrics?.openTunnels.inc();
  rt.metrics?.tunnels.inc({ mode: t.mode });
  socket.once('close', () => {
    rt.metrics?.openTunnels.dec();
    const bytes = t.bytes ? { bytes_in: t.bytes.in, bytes_out: t.bytes.out, reason: 'opaque tunnel closed' } : {};
    const err = t.ending?.() ?? null;
    rt.audit.write({
      time: new Date().toISOString(),
      event: 'tunnel_close',
      outcome: outcomeOf(err),
      ...base,
      ...(err ? { code: err.code, reason: err.reason, status: err.status } : {}),
      duration_ms: Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10,
      ...bytes,
    });
  });
}
