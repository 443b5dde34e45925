/**
 * Every metric Turret exports, in one file, so the names table in docs/operations.md has one
 * source. Each process gets its own prom-client Registry (never the global one): tests can
 * create as many as they like, and a library importing prom-client cannot add to our output.
 *
 * Label values must come from closed sets or from configuration (agent, secret and rule names),
 * never from the request: a host or path label would let an agent grow the series without bound.
 * That is why upstream latency is labelled by scheme, not by host.
 *
 * The metrics updated on every request are hot.ts counters and histograms (recorded into plain
 * structures, handed to the Registry at scrape time); the rest are prom-client's own classes.
 */

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from './hot.js';

/** `decision` label of turret_requests_total. */
export type RequestDecision = 'allowed' | 'denied' | 'failed' | 'aborted';
export type LeafCacheResult = 'hit' | 'mint';
export type ReloadResult = 'ok' | 'failed';
export type TunnelMode = 'intercept' | 'passthrough';
/** `code` label value when the request carried no X-Turret-Error code. */
export const NO_CODE = 'none';

export interface Metrics {
  registry: Registry;
  /** Requests finished, by agent (or "unknown"), decision and X-Turret-Error code (or "none"). */
  requests: HotCounter<'agent' | 'decision' | 'code', [agent: string, decision: string, code: string]>;
  /** Whole request time at the proxy, from the first byte to the response's end. */
  requestDuration: HotHistogram<'decision', [decision: string]>;
  /** Time from sending the request upstream to its response headers. */
  upstreamLatency: HotHistogram<'scheme', [scheme: string]>;
  /** Guarded connect: resolve, check, dial and (for https) the TLS handshake. */
  upstreamConnect: Histogram<'scheme'>;
  openTunnels: Gauge;
  tunnels: Counter<'mode'>;
  leafCache: Counter<'result'>;
  leafMint: Histogram;
  injections: HotCounter<'secret', [secret: string]>;
  redactions: HotCounter<'type', [type: string]>;
  connectsRefused: Counter<'class'>;
  reloads: Counter<'result'>;
  lastReloadSuccess: Gauge;
  auditRecords: HotCounter<'event' | 'outcome', [event: string, outcome: string]>;
  auditErrors: Counter;
  /** Proxy credentials refused: wrong (`invalid`) or not even checked (`throttled`, auth-throttle.ts). */
  proxyAuthFailures: Counter<'result'>;
  /** Requests refused because they carried a known secret value (secret_in_request), by secret name. */
  outboundSecrets: HotCounter<'secret', [secret: string]>;
  /** Connections a listener refused (max_client_connections) or failed to accept (EMFILE…), listen/accept.ts. */
  acceptFailures: Counter<'listener' | 'reason'>;
  ready: Gauge;
  secretAge: Gauge<'secret'>;
  secretStale: Gauge<'secret'>;
  buildInfo: Gauge<'version' | 'node'>;
}

export const METRIC_PREFIX = 'turret_';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const MINT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

export interface MetricsOptions {
  /** prom-client's process and Node.js metrics, prefixed turret_. Default true. */
  defaultMetrics?: boolean;
  /** Turret's version for turret_build_info. */
  version?: string;
}

export function createMetrics(o: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const r = { registers: [registry] };
  const n = (s: string): string => METRIC_PREFIX + s;
  const m: Metrics = {
    registry,
    requests: new HotCounter(registry, n('requests_total'), 'Requests finished, by agent, decision and X-Turret-Error code', ['agent', 'decision', 'code']),
    requestDuration: new HotHistogram(registry, n('request_duration_seconds'), 'Time a request spent in the proxy, by decision', ['decision'], LATENCY_BUCKETS),
    upstreamLatency: new HotHistogram(registry, n('upstream_latency_seconds'), 'Time from sending a request upstream to its response headers', ['scheme'], LATENCY_BUCKETS),
    upstreamConnect: new Histogram({
      ...r,
      name: n('upstream_connect_seconds'),
      help: 'Guarded connect time: resolve, address check, dial and TLS handshake',
      labelNames: ['scheme'],
      buckets: LATENCY_BUCKETS,
    }),
    openTunnels: new Gauge({ ...r, name: n('open_tunnels'), help: 'CONNECT tunnels open now' }),
    tunnels: new Counter({ ...r, name: n('tunnels_total'), help: 'CONNECT tunnels opened, by mode', labelNames: ['mode'] }),
    leafCache: new Counter({ ...r, name: n('leaf_cache_total'), help: 'Leaf certificate lookups: hit (cached) or mint (newly signed)', labelNames: ['result'] }),
    leafMint: new Histogram({ ...r, name: n('leaf_mint_seconds'), help: 'Time to mint one leaf certificate', buckets: MINT_BUCKETS }),
    injections: new HotCounter(registry, n('injections_total'), 'Secrets injected into requests, by secret name', ['secret']),
    redactions: new HotCounter(registry, n('redactions_total'), 'Values redacted from responses and logs, by type', ['type']),
    connectsRefused: new Counter({ ...r, name: n('connects_refused_total'), help: 'Upstream connects refused after resolution, by address class', labelNames: ['class'] }),
    reloads: new Counter({ ...r, name: n('reloads_total'), help: 'Configuration and rule reloads, by result', labelNames: ['result'] }),
    lastReloadSuccess: new Gauge({ ...r, name: n('last_reload_success_timestamp_seconds'), help: 'Unix time of the last successful configuration load' }),
    auditRecords: new HotCounter(registry, n('audit_records_total'), 'Audit records written, by event and outcome', ['event', 'outcome']),
    auditErrors: new Counter({ ...r, name: n('audit_errors_total'), help: 'Audit log appends or rotations that failed (records lost)' }),
    proxyAuthFailures: new Counter({
      ...r,
      name: n('proxy_auth_failures_total'),
      help: 'Proxy credentials refused: invalid (checked and wrong) or throttled (refused unchecked after too many failures from the address)',
      labelNames: ['result'],
    }),
    outboundSecrets: new HotCounter(registry, n('outbound_secret_blocked_total'), 'Requests refused because they carried a known secret value, by secret name', ['secret']),
    acceptFailures: new Counter({
      ...r,
      name: n('accept_failures_total'),
      help: 'Client connections a listener refused at max_client_connections or failed to accept (EMFILE, ENFILE…), by listener and reason',
      labelNames: ['listener', 'reason'],
    }),
    ready: new Gauge({ ...r, name: n('ready'), help: '1 when CA, rules and secret sources are loaded, else 0' }),
    secretAge: new Gauge({
      ...r,
      name: n('secret_age_seconds'),
      help: 'Age of each secret value (since its source last changed), updated when the console or /metrics is read',
      labelNames: ['secret'],
    }),
    secretStale: new Gauge({ ...r, name: n('secret_stale'), help: '1 when a secret value is older than its max_age', labelNames: ['secret'] }),
    buildInfo: new Gauge({ ...r, name: n('build_info'), help: 'Always 1; labels carry the Turret and Node.js versions', labelNames: ['version', 'node'] }),
  };
  // Zero the closed-set series so dashboards and alerts see 0 rather than no data.
  for (const result of ['hit', 'mint'] satisfies LeafCacheResult[]) m.leafCache.inc({ result }, 0);
  for (const result of ['ok', 'failed'] satisfies ReloadResult[]) m.reloads.inc({ result }, 0);
  for (const mode of ['intercept', 'passthrough'] satisfies TunnelMode[]) m.tunnels.inc({ mode }, 0);
  for (const result of ['invalid', 'throttled']) m.proxyAuthFailures.inc({ result }, 0);
  m.acceptFailures.inc({ listener: 'proxy', reason: 'max_connections' }, 0);
  m.ready.set(0);
  m.buildInfo.set({ version: o.version ?? 'unknown', node: process.versions.node }, 1);
  if (o.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return m;
}

/** What the admin listener's /metrics handler sends. */
export async function exposition(m: Metrics): Promise<{ contentType: string; body: string }> {
  return { contentType: m.registry.contentType, body: await m.registry.metrics() };
}
