/**
 * `--limit NAME=VALUE` (repeatable) and `TURRET_LIMITS="NAME=VALUE,NAME=VALUE"`: the resource
 * limits of `turret start`. One flag with names rather than nine flags keeps `--help` short and
 * gives the environment the same spelling. Flags win over the environment; unknown names and
 * bad values are usage errors (exit 2) that list what is accepted.
 */
import { DEFAULT_LIMITS, type Limits } from '../proxy/limits.js';
import { UsageError } from './common.js';

type Kind = 'bytes' | 'duration' | 'count';

interface LimitSpec {
  key: keyof Limits;
  kind: Kind;
  /** Smallest accepted value (bytes, ms or count); 0 only where it means "off". */
  min: number;
  help: string;
}

export const LIMIT_SPECS: Readonly<Record<string, LimitSpec>> = {
  max_header_bytes: { key: 'maxHeaderBytes', kind: 'bytes', min: 1024, help: 'request head size; larger → 431 headers_too_large' },
  connect_timeout: { key: 'connectTimeoutMs', kind: 'duration', min: 100, help: 'upstream resolve + connect + TLS handshake → 504 upstream_timeout' },
  upstream_headers_timeout: { key: 'headersTimeoutMs', kind: 'duration', min: 100, help: 'upstream response headers after the request was sent → 504 upstream_timeout' },
  upstream_idle_timeout: { key: 'bodyTimeoutMs', kind: 'duration', min: 100, help: 'longest pause in an upstream response body → response aborted' },
  idle_timeout: { key: 'idleTimeoutMs', kind: 'duration', min: 100, help: 'client connection with no traffic → closed' },
  client_headers_timeout: { key: 'clientHeadersTimeoutMs', kind: 'duration', min: 100, help: 'a complete request head must arrive within this → 408, closed' },
  client_request_timeout: { key: 'clientRequestTimeoutMs', kind: 'duration', min: 100, help: 'the whole request (head + body) must arrive within this → closed' },
  request_timeout: { key: 'requestTimeoutMs', kind: 'duration', min: 0, help: 'whole exchange, 0 = none → 504 upstream_timeout or aborted' },
  max_buffered_body: {
    key: 'maxBufferedBodyBytes',
    kind: 'bytes',
    min: 1024,
    help: 'request body held in memory (SigV4 payload hashing, length correction after body injection); larger → 413 body_too_large',
  },
  max_tunnels_per_agent: { key: 'maxTunnelsPerAgent', kind: 'count', min: 1, help: 'CONNECT tunnels open at once per agent → 429 too_many_tunnels' },
  upstream_connections_per_agent: {
    key: 'upstreamConnectionsPerAgent',
    kind: 'count',
    min: 1,
    help: "upstream connections per agent and origin; more requests wait for that agent's own connections, never for another agent's",
  },
  max_client_connections: {
    key: 'maxClientConnections',
    kind: 'count',
    min: 0,
    help: 'connections each client listener holds at once; more are refused and counted (turret_accept_failures_total); 0 = (open-files limit − 64) / 2 per listener',
  },
  upstream_queue_timeout: {
    key: 'upstreamQueueTimeoutMs',
    kind: 'duration',
    min: 0,
    help: "longest wait for one of the agent's own upstream connections (includes opening one) → 503 upstream_queue_timeout; 0 = up to request_timeout",
  },
};

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2 };

/** "30s", "1500ms", "5m", "1h"; a bare number is seconds. */
export function parseDurationMs(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim().toLowerCase());
  if (!m) return null;
  const v = Number(m[1]) * (UNITS[m[2] ?? 's'] ?? 1_000);
  return Number.isFinite(v) ? Math.round(v) : null;
}

function parseBytes(s: string): number | null {
  const m = /^(\d+)\s*([a-z]*)$/.exec(s.trim().toLowerCase());
  const unit = m ? BYTE_UNITS[m[2] ?? ''] : undefined;
  return m && unit !== undefined ? Number(m[1]) * unit : null;
}

function parseOne(item: string, from: string): [keyof Limits, number] {
  const eq = item.indexOf('=');
  const name = (eq < 0 ? item : item.slice(0, eq)).trim().toLowerCase().replace(/-/g, '_');
  // Own keys only: "__proto__" or "constructor" must not find Object.prototype.
  const spec = Object.hasOwn(LIMIT_SPECS, name) ? LIMIT_SPECS[name] : undefined;
  if (!spec) throw new UsageError(`${from}: unknown limit "${name.slice(0, 40)}"; known: ${Object.keys(LIMIT_SPECS).join(', ')}`);
  if (eq < 0) throw new UsageError(`${from}: limit ${name} needs a value, e.g. ${name}=${example(spec.kind)}`);
  const raw = item.slice(eq + 1);
  const v = spec.kind === 'duration' ? parseDurationMs(raw) : spec.kind === 'bytes' ? parseBytes(raw) : /^\d+$/.test(raw.trim()) ? Number(raw) : null;
  if (v === null || !Number.isSafeInteger(v)) throw new UsageError(`${from}: limit ${name}="${raw.slice(0, 40)}" is not a ${spec.kind} (e.g. ${example(spec.kind)})`);
  if (v < spec.min && !(spec.min === 0 && v === 0)) throw new UsageError(`${from}: limit ${name} must be at least ${spec.min}${spec.kind === 'duration' ? ' ms' : ''}`);
  return [spec.key, v];
}

function example(kind: Kind): string {
  switch (kind) {
    case 'bytes':
      return '64k';
    case 'duration':
      return '30s';
    case 'count':
      return '32';
  }
}

/** Limits from TURRET_LIMITS, then the flags (later wins), over the defaults. */
export function parseLimits(flags: string | string[] | undefined, env: NodeJS.ProcessEnv = process.env): Limits {
  const out: Limits = { ...DEFAULT_LIMITS };
  const fromEnv = (env.TURRET_LIMITS ?? '').split(',').filter((s) => s.trim() !== '');
  const fromFlags = flags === undefined ? [] : Array.isArray(flags) ? flags : [flags];
  for (const item of fromEnv) {
    const [k, v] = parseOne(item, 'TURRET_LIMITS');
    out[k] = v;
  }
  for (const item of fromFlags.flatMap((f) => String(f).split(','))) {
    const [k, v] = parseOne(item, '--limit');
    out[k] = v;
  }
  // Node refuses a server whose headersTimeout exceeds its requestTimeout (ERR_OUT_OF_RANGE).
  if (out.clientHeadersTimeoutMs > out.clientRequestTimeoutMs) {
    throw new UsageError('limit client_headers_timeout must not exceed client_request_timeout');
  }
  return out;
}
