/**
 * The admin listener: a separate port from the proxy (so an agent that can reach the proxy
 * cannot scrape it, and a NetworkPolicy can treat them differently), loopback by default.
 *
 *   GET /healthz  200 while the process runs (liveness; never needs the token: it says nothing)
 *   GET /readyz   200 once CA, rules and secret sources are loaded and not draining, else 503;
 *                 JSON with each check, missing secret names and the last refused reload
 *   GET /metrics  Prometheus text (prom-client registry of this process)
 *
 * With a token, /readyz and /metrics need `Authorization: Bearer <token>` (compared over
 * digests in constant time). Nothing here ever prints a secret value: readiness names secrets,
 * reload errors are file:line problems from the rule loader (which refuses inline values).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../../core/log.js';
import { exposition, type Metrics } from '../../metrics/metrics.js';
import type { StateHealth } from '../../state/types.js';
import type { Runtime } from '../runtime.js';
import { guardAccepts } from './accept.js';
import { Sessions } from '../console/auth.js';
import { isConsolePath, routeConsole, type ConsoleContext } from '../console/router.js';
import { secretViews } from '../console/state.js';

export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:8751';

export interface Readiness {
  ready: boolean;
  checks: { ca: boolean; rules: boolean; secrets: boolean; audit: boolean; shared_state: boolean; draining: boolean };
  /** Secrets the rules name whose source gave no value (requests needing them are refused). */
  missing_secrets: string[];
  last_reload_error: { at: string; why: string; problems: string[] } | null;
  /** First audit write failure since start; in production no request is served after one. */
  audit_failure: string | null;
  /** Where limits and revocations live, and whether that store is reachable (state/types.ts). */
  shared_state: StateHealth | null;
}

/** What start.ts has done so far; the admin listener is up before any of it. */
export interface StartupState {
  rt: Runtime | null;
  auditOpen: boolean;
  draining: boolean;
}

export function readiness(s: StartupState): Readiness {
  const rt = s.rt;
  const rules = rt?.ready === true;
  const missing = rules ? [...rt.state.policy.secrets.values()].filter((d) => !rt.secretValue(d)).map((d) => d.name) : [];
  // Development serves from local state while Redis is away, so it stays ready; production refuses.
  const shared = rt !== null && rt.shared.refusal() === null;
  const checks = {
    ca: rt !== null,
    rules,
    secrets: rules && missing.length === 0,
    audit: s.auditOpen && (rt?.auditFailure ?? null) === null,
    shared_state: shared,
    draining: s.draining,
  };
  const ready = checks.ca && checks.rules && checks.secrets && checks.audit && checks.shared_state && !s.draining;
  rt?.metrics?.ready.set(ready ? 1 : 0);
  return {
    ready,
    checks,
    missing_secrets: missing,
    last_reload_error: rt?.lastReloadError ?? null,
    audit_failure: rt?.auditFailure ?? null,
    shared_state: rt?.shared.health() ?? null,
  };
}

export interface AdminOptions {
  listen: { host: string; port: number };
  /** Bearer token for /readyz and /metrics; null = none (loopback only in production). */
  token: string | null;
  metrics: Metrics;
  state: StartupState;
  log: Logger;
}

export interface AdminServer {
  address(): AddressInfo;
  close(): Promise<void>;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function authorised(header: string | undefined, token: string | null): boolean {
  if (token === null) return true;
  const m = /^bearer[ \t]+(\S+)\s*$/i.exec(header ?? '');
  return timingSafeEqual(digest(m?.[1] ?? ''), digest(token)) && m !== null;
}

function send(res: http.ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

const JSON_TYPE = 'application/json; charset=utf-8';

async function route(o: AdminOptions, consoleCtx: ConsoleContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  // The operator's console and the approvals API (console/router.ts) share this listener.
  if (isConsolePath(path)) return routeConsole(consoleCtx, req, res);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n', { allow: 'GET, HEAD' });
    return;
  }
  if (path === '/healthz') {
    send(res, 200, JSON_TYPE, `${JSON.stringify({ status: 'ok', uptime_s: Math.round(process.uptime()) })}\n`);
    return;
  }
  if (path !== '/readyz' && path !== '/metrics') {
    send(res, 404, 'text/plain; charset=utf-8', 'not found; try /healthz, /readyz or /metrics\n');
    return;
  }
  if (!authorised(req.headers.authorization, o.token)) {
    send(res, 401, 'text/plain; charset=utf-8', 'admin token required: Authorization: Bearer <token>\n', { 'www-authenticate': 'Bearer realm="turret-admin"' });
    return;
  }
  const r = readiness(o.state);
  if (path === '/readyz') {
    send(res, r.ready ? 200 : 503, JSON_TYPE, `${JSON.stringify(r)}\n`);
    return;
  }
  if (o.state.rt?.ready) secretViews(o.state.rt); // refreshes the secret age gauges
  const e = await exposition(o.metrics);
  send(res, 200, e.contentType, e.body);
}

export async function startAdminServer(o: AdminOptions): Promise<AdminServer> {
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 15_000, maxHeaderSize: 8 * 1024 });
  const consoleCtx: ConsoleContext = { token: o.token, sessions: new Sessions(), runtime: () => (o.state.rt?.ready ? o.state.rt : null) };
  server.on('request', (req, res) => {
    route(o, consoleCtx, req, res).catch((e: unknown) => {
      o.log.error('admin request failed', { path: (req.url ?? '').slice(0, 100), error: (e as Error)?.message });
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.listen.port, o.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  guardAccepts({ log: o.log, metrics: o.metrics }, server, 'admin', null);
  return {
    address: () => server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
