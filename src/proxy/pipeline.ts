/**
 * The request pipeline, in request order, in one array:
 *
 *   identify → target → decide → inject → forward (guarded connect, send, scrub the response)
 *
 * A stage fills in the exchange or throws a TurretError. Only `fail` (via respond.ts) turns an
 * error into bytes; `finish` always runs and writes exactly one audit record and the metrics.
 * Interception happens before this pipeline (connect.ts) and feeds every request inside a tunnel
 * through it again, so each inner request is decided on its own.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TurretError, asTurretError } from '../core/errors.js';
import { stripQueryValues } from '../audit/record.js';
import { decide } from '../policy/decide.js';
import { injectHeaders } from '../secrets/inject.js';
import { fingerprint } from '../secrets/keys.js';
import { newExchange, type Exchange, type Tunnel } from './exchange.js';
import { forward } from './forward.js';
import { checkLookalike } from './guards.js';
import { upstreamRequestHeaders } from './headers.js';
import { identifyAgent } from './identify.js';
import { sendError } from './respond.js';
import type { Runtime } from './runtime.js';
import { targetFromAbsolute, targetInTunnel } from './target.js';

interface Stage {
  name: 'identify' | 'target' | 'decide' | 'inject' | 'forward';
  run(x: Exchange, rt: Runtime): void | Promise<void>;
}

export const STAGES: readonly Stage[] = [
  {
    name: 'identify',
    run(x, rt) {
      if (x.tunnel) return; // the tunnel's CONNECT was authenticated
      x.agent = identifyAgent(x.req.headers, x.state.policy, rt.ring, rt.values);
    },
  },
  {
    name: 'target',
    run(x) {
      const url = x.req.url ?? '';
      const t = x.tunnel ? targetInTunnel(x.tunnel, url, x.req.headers.host) : targetFromAbsolute(url);
      x.scheme = t.scheme;
      x.host = t.host;
      x.port = t.port;
      x.path = t.path;
    },
  },
  {
    name: 'decide',
    run(x) {
      checkLookalike(x.state.policy, x.agent ?? '', x.host ?? '');
      const d = decide(x.state.policy, { agent: x.agent ?? '', method: x.req.method ?? '', scheme: x.scheme ?? 'https', host: x.host ?? '', port: x.port ?? 0, path: x.path ?? '/' });
      x.decision = d;
      if (!d.allow) throw new TurretError(d.code ?? 'policy_denied', d.reason, { rule: d.rule?.id });
    },
  },
  {
    name: 'inject',
    run(x, rt) {
      const headers = upstreamRequestHeaders(x.req.rawHeaders, x.host ?? '', x.port ?? 0, x.scheme ?? 'https');
      const r = injectHeaders(
        {
          ring: rt.ring,
          policy: x.state.policy,
          isRevoked: (id) => rt.revocations.has(id),
          secretValue: (def) => rt.secretValue(def),
          agent: x.agent ?? '',
          scheme: x.scheme ?? 'https',
          host: x.host ?? '',
          port: x.port ?? 0,
        },
        headers,
        x.path ?? '/',
      );
      x.upstreamHeaders = r.headers;
      x.injections = r.injections;
    },
  },
  {
    name: 'forward',
    async run(x, rt) {
      const scrubber = x.state.scrubbers.get(x.injections);
      await forward(x, scrubber, (type) => rt.metrics?.redactions.inc({ type }));
    },
  },
];

export async function handleRequest(rt: Runtime, req: IncomingMessage, res: ServerResponse, tunnel: Tunnel | null): Promise<void> {
  const x = newExchange(req, res, tunnel, rt.state);
  try {
    for (const stage of STAGES) await stage.run(x, rt);
  } catch (e) {
    x.error = asTurretError(e);
    if (x.error.code === 'internal_error') rt.log.error('request failed', { request_id: x.id, error: String((e as Error)?.stack ?? e) });
    fail(x, x.error);
  } finally {
    finish(x, rt);
  }
}

function fail(x: Exchange, err: TurretError): void {
  const scrub = x.state.scrubbers.get(x.injections);
  const target = x.host ? `${x.scheme}://${x.host}:${x.port}${stripQueryValues(x.path ?? '/')}` : null;
  if (!x.res.headersSent) x.status = err.status;
  sendError(x.res, err, { method: x.req.method, target, scrub: (s) => scrub.scrubString(s).text });
}

function outcome(x: Exchange): 'completed' | 'denied' | 'failed' {
  if (!x.error) return 'completed';
  return x.error.status < 500 ? 'denied' : 'failed';
}

/** Exactly one audit record and one metrics update per exchange. */
function finish(x: Exchange, rt: Runtime): void {
  const durationMs = Number(process.hrtime.bigint() - x.started) / 1e6;
  const out = outcome(x);
  const fps: Record<string, string> = {};
  for (const i of x.injections) fps[i.secret] = fingerprint(rt.ring, i.value.reveal());
  rt.audit.write({
    time: x.time.toISOString(),
    event: 'request',
    outcome: out,
    agent: x.agent,
    method: x.req.method,
    scheme: x.scheme ?? undefined,
    host: x.host ?? undefined,
    port: x.port ?? undefined,
    path: x.path ? stripQueryValues(x.path) : undefined,
    rule: x.error?.rule ?? x.decision?.rule?.id ?? null,
    reason: x.error?.reason ?? x.decision?.reason,
    code: x.error?.code,
    status: x.status ?? undefined,
    bytes_in: x.bytesIn,
    bytes_out: x.bytesOut,
    duration_ms: Math.round(durationMs * 10) / 10,
    secrets: x.injections.length ? [...new Set(x.injections.map((i) => i.secret))] : undefined,
    fingerprints: x.injections.length ? fps : undefined,
    redactions: x.redactions || undefined,
    client: x.client,
    tunnel_id: x.tunnel?.id,
    request_id: x.id,
  });
  const m = rt.metrics;
  if (m) {
    const decision = out === 'completed' ? 'allowed' : out;
    m.requests.inc({ agent: x.agent ?? 'unknown', decision, code: x.error?.code ?? 'none' });
    m.requestDuration.observe({ decision }, durationMs / 1000);
    for (const i of x.injections) m.injections.inc({ secret: i.secret });
  }
}
