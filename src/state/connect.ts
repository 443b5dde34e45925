/**
 * ioredis options from `settings.shared_state`. The URL is parsed here rather than handed to
 * ioredis so that the password only ever travels in the options object (never in a string that
 * could be logged), and so TLS gets the operator's CA and the right server name.
 *
 * Failure behaviour is set here too: commands fail at once while disconnected (no offline
 * queue: a request must not wait for a reconnect that may never come), one command waits at
 * most `timeoutMs`, and reconnects back off to at most one second so Turret is serving again
 * within about a second of Redis coming back.
 */
import { isIP } from 'node:net';
import type { RedisOptions } from 'ioredis';
import type { SharedStateSettings } from '../policy/types.js';

export const MAX_RECONNECT_DELAY_MS = 1000;

export interface Credentials {
  password: string | null;
  /** PEM text of settings.caFile (read by the caller), or null for the system roots. */
  ca: string | null;
}

export function redisOptions(s: SharedStateSettings, cred: Credentials, o: { server: boolean }): RedisOptions {
  const u = new URL(s.url);
  const tls = u.protocol === 'rediss:';
  const db = Number(u.pathname.replace(/^\//, '') || '0');
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  // SNI carries names only (RFC 6066); for an address, Node checks the certificate against `host`.
  const sni = isIP(host) === 0 ? { servername: host } : {};
  return {
    host,
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(s.username ? { username: s.username } : {}),
    ...(cred.password ? { password: cred.password } : {}),
    ...(tls ? { tls: { ...sni, ...(cred.ca ? { ca: [cred.ca] } : {}) } } : {}),
    connectTimeout: Math.max(2000, s.timeoutMs),
    commandTimeout: s.timeoutMs,
    // The proxy answers from local state or refuses; it never queues a request behind a reconnect.
    // The CLI (one command, then exit) may wait for its first connection.
    enableOfflineQueue: !o.server,
    maxRetriesPerRequest: o.server ? 0 : 1,
    autoResubscribe: false,
    lazyConnect: true,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS),
  };
}

/** The error text worth logging: ioredis messages carry host and port, never the password. */
export function describeError(e: unknown): string {
  const m = (e as Error)?.message ?? String(e);
  return m.slice(0, 200);
}
