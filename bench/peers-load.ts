/**
 * The load generator of `npm run bench -- peers`, over undici. A `Route` says how a client
 * reaches the upstreams: directly, or through an explicit proxy (plain HTTP in absolute form on
 * a pooled connection to the proxy; HTTPS through CONNECT with undici's ProxyAgent, keep-alive
 * inside the tunnel). Every loop is bounded by a deadline and a request count.
 */
import { Pool, ProxyAgent, type Dispatcher } from 'undici';

export interface Route {
  /** Undefined for direct. */
  proxyPort?: number;
  /** Proxy-Authorization value (Turret's agent credential), if the proxy wants one. */
  proxyAuth?: string;
  /**
   * Whether the URL names the host (Turret resolves it through `settings.dns_hosts`) or is
   * 127.0.0.1 with the name only in SNI: peers without a host map would send a DNS query off the
   * machine for a name, and a tunnel or MITM proxy connects to the same address either way.
   */
  namedHosts: boolean;
  /** CAs the client trusts for HTTPS (the upstream's, or the intercepting proxy's). */
  ca: string;
}

/** One GET: resolves to the body length, rejects on a non-200 status. */
export type Get = (path: string, headers?: Record<string, string>) => Promise<number>;

export interface Client {
  get: Get;
  close(): Promise<void>;
}

const TIMEOUTS = { headersTimeout: 15_000, bodyTimeout: 15_000 };

async function drain(r: Dispatcher.ResponseData): Promise<number> {
  let n = 0;
  for await (const c of r.body as AsyncIterable<Buffer>) n += c.length;
  if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
  return n;
}

export function httpClient(route: Route, port: number, host: string, connections: number): Client {
  const authority = `${route.namedHosts ? host : '127.0.0.1'}:${port}`;
  const pool = new Pool(`http://127.0.0.1:${route.proxyPort ?? port}`, { connections, ...TIMEOUTS });
  const auth: Record<string, string> = route.proxyAuth ? { 'proxy-authorization': route.proxyAuth } : {};
  return {
    get: async (path, headers = {}) =>
      drain(await pool.request({ method: 'GET', path: route.proxyPort ? `http://${authority}${path}` : path, headers: { host: authority, ...auth, ...headers } })),
    close: () => pool.close(),
  };
}

export function httpsClient(route: Route, port: number, host: string, connections: number): Client {
  const authority = `${route.namedHosts ? host : '127.0.0.1'}:${port}`;
  const tls = { ca: route.ca, servername: host };
  const d: Dispatcher =
    route.proxyPort === undefined
      ? new Pool(`https://127.0.0.1:${port}`, { connections, connect: tls, ...TIMEOUTS })
      : new ProxyAgent({ uri: `http://127.0.0.1:${route.proxyPort}`, ...(route.proxyAuth ? { token: route.proxyAuth } : {}), requestTls: tls, connections, ...TIMEOUTS });
  const origin = `https://${authority}`;
  return {
    get: async (path, headers = {}) => drain(await d.request({ origin, method: 'GET', path, headers: { host: authority, ...headers } })),
    close: () => d.close(),
  };
}

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  count: number;
  /** Every request sent, warm-up included (for CPU per request). */
  total: number;
  errors: number;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/**
 * Closed loop: `concurrency` workers each send one request at a time. The measured window opens
 * once `warmupMs` have passed and every worker has completed 3 requests (so every connection,
 * client-side and proxy-to-upstream, exists: opening them is measured separately), or after 10 s
 * at the latest; it lasts `durationMs`. `onMeasureStart` runs when it opens. Stops early after 50
 * errors (a broken peer must not spin for the whole window).
 */
export async function closedLoop(
  get: () => Promise<number>,
  o: { concurrency: number; warmupMs: number; durationMs: number; maxRequests: number; onMeasureStart?: () => void },
): Promise<LoadResult> {
  const start = performance.now();
  let measureFrom = Infinity;
  let deadline = start + 10_000 + o.durationMs;
  const done = new Array<number>(o.concurrency).fill(0);
  const lat: number[] = [];
  let errors = 0;
  let sent = 0;
  let lastError: unknown;
  const open = (now: number): void => {
    if (measureFrom !== Infinity || now - start < o.warmupMs || (now - start < 10_000 && done.some((n) => n < 3))) return;
    measureFrom = now;
    deadline = now + o.durationMs;
    o.onMeasureStart?.();
  };
  const worker = async (w: number): Promise<void> => {
    while (sent < o.maxRequests && errors < 50) {
      const t0 = performance.now();
      open(t0);
      if (t0 >= deadline) return;
      sent++;
      try {
        await get();
        done[w] = (done[w] ?? 0) + 1;
        if (t0 >= measureFrom) lat.push(performance.now() - t0);
      } catch (e) {
        errors++;
        lastError = e;
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, w) => worker(w)));
  const window = (Math.min(performance.now(), deadline + 1_000) - measureFrom) / 1000;
  if (errors >= 50 || lat.length === 0) throw new Error(`load failed after ${errors} errors: ${String((lastError as Error)?.message ?? lastError)}`);
  lat.sort((a, b) => a - b);
  return { rps: lat.length / window, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), count: lat.length, total: sent, errors };
}

/** Sequential downloads on one connection after one warm-up download: MB/s (10^6 bytes). */
export async function download(c: Client, expect: number, o: { maxRuns: number; maxMs: number }): Promise<number> {
  const check = (n: number): void => {
    if (n !== expect) throw new Error(`short body: ${n} of ${expect} bytes`);
  };
  check(await c.get('/big'));
  let bytes = 0;
  const t0 = performance.now();
  for (let i = 0; i < o.maxRuns && performance.now() - t0 < o.maxMs; i++) {
    const n = await c.get('/big');
    check(n);
    bytes += n;
  }
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

/**
 * New-connection cost, sequential: for each host a fresh client (new TCP connection, new
 * CONNECT, new TLS handshake) sends one small GET. Returns the median ms.
 */
export async function firstRequests(make: (host: string) => Client, hosts: string[]): Promise<number> {
  const xs: number[] = [];
  for (const h of hosts) {
    const c = make(h);
    const t0 = performance.now();
    try {
      await c.get('/small');
      xs.push(performance.now() - t0);
    } finally {
      await c.close();
    }
  }
  xs.sort((a, b) => a - b);
  return quantile(xs, 0.5);
}
