/**
 * Connections a listener cannot take. At the process's open-files limit libuv accepts and at
 * once closes every pending connection with a descriptor it keeps in reserve, and tells nobody:
 * the client sees a reset, Turret logs nothing, counts nothing. So Turret stops short of the
 * limit itself: each client listener takes at most `max_client_connections` connections (by
 * default derived from the limit: two descriptors per connection, the client's and one upstream,
 * after FD_RESERVE for the process) and refuses the rest with a count and a log line. What libuv
 * does report (an accept that failed even so) is counted and logged the same way, where an
 * 'error' without a listener used to be an uncaught exception.
 *
 * Counted in turret_accept_failures_total{listener, reason}; logged at warn at most once per
 * LOG_EVERY_MS per listener and reason, with how many were refused since the last line (`count`).
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import type { Logger } from '../../core/log.js';
import type { Metrics } from '../../metrics/metrics.js';

export type ListenerName = 'proxy' | 'transparent' | 'admin';

/** Descriptors kept for everything that is not a client connection and its upstream: audit, DNS, idle pooled connections, admin. */
export const FD_RESERVE = 64;
const LOG_EVERY_MS = 10_000;

/** The soft open-files limit of this process (Linux: /proc/self/limits), or null when unknown. */
export function openFilesLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Connections each of `listeners` client listeners may hold: `configured` when set (not 0), else
 * the open-files limit shared out as above (at least 1), or null (no cap) when the limit is unknown.
 */
export function connectionCap(configured: number, listeners: number, fdLimit: number | null = openFilesLimit()): number | null {
  if (configured > 0) return configured;
  if (fdLimit === null) return null;
  return Math.max(1, Math.floor((fdLimit - FD_RESERVE) / 2 / Math.max(1, listeners)));
}

/**
 * A warn line at most once per LOG_EVERY_MS per key, carrying how many events it stands for
 * (`count`): at the fd limit the same failure comes thousands of times a second.
 */
export function throttledWarn(log: Logger): (key: string, msg: string, fields: Record<string, unknown>) => void {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (key, msg, fields) => {
    const now = Date.now();
    const seen = last.get(key);
    if (seen && now - seen.at < LOG_EVERY_MS) {
      seen.suppressed++;
      return;
    }
    log.warn(msg, { ...fields, count: (seen?.suppressed ?? 0) + 1 });
    last.set(key, { at: now, suppressed: 0 });
  };
}

/** Caps `server` at `cap` connections (null: no cap) and counts and logs what it refuses or fails to accept. */
export function guardAccepts(rt: { log: Logger; metrics: Metrics | null }, server: Server, listener: ListenerName, cap: number | null): void {
  if (cap !== null) server.maxConnections = cap;
  const warn = throttledWarn(rt.log);
  const note = (reason: string, msg: string): void => {
    rt.metrics?.acceptFailures.inc({ listener, reason });
    warn(reason, msg, { listener, reason, ...(cap !== null ? { max_client_connections: cap } : {}) });
  };
  server.on('drop', () => note('max_connections', 'connection refused: the listener holds max_client_connections connections (raise the open-files limit, docs/operations.md)'));
  server.on('error', (err: Error & { code?: string }) => note(err.code ?? 'unknown', 'accepting a connection failed'));
}
