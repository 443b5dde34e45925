/**
 * finish: the one audit record and metrics update every exchange gets (plain requests, requests
 * inside tunnels, WebSocket upgrades), whatever happened to it.
 */
import { stripQueryValues } from '../../audit/record.js';
import { isoTime } from '../../core/iso-time.js';
import { fingerprint } from '../../secrets/keys.js';
import type { Exchange } from './exchange.js';
import type { Runtime } from '../runtime.js';
import { outcomeOf } from '../record.js';

/** Exactly one audit record and one metrics update per exchange. */
export function finishExchange(x: Exchange, rt: Runtime): void {
  const durationMs = Number(process.hrtime.bigint() - x.started) / 1e6;
  const out = outcomeOf(x.error);
  let fps: Record<string, string> | undefined;
  if (x.injections.length > 0) {
    fps = {};
    for (const i of x.injections) fps[i.secret] = fingerprint(rt.ring, i.value.reveal());
  }
  rt.audit.write({
    time: isoTime(x.time),
    event: 'request',
    outcome: out,
    agent: x.agent,
    method: x.req.method,
    scheme: x.target?.scheme,
    host: x.target?.host,
    port: x.target?.port,
    path: x.target ? stripQueryValues(x.target.path) : undefined,
    rule: x.error?.rule ?? x.decision?.rule?.id ?? null,
    reason: x.error?.reason ?? x.decision?.reason,
    code: x.error?.code,
    status: x.status ?? undefined,
    bytes_in: x.bytesIn,
    bytes_out: x.bytesOut,
    duration_ms: Math.round(durationMs * 10) / 10,
    secrets: x.injections.length ? [...new Set(x.injections.map((i) => i.secret))] : undefined,
    fingerprints: fps,
    redactions: x.redactions || undefined,
    alert: x.alert?.code,
    alert_secret: x.alert?.secret,
    client: x.client,
    tunnel_id: x.tunnel?.id,
    request_id: x.id,
    approval: x.approval ?? undefined,
  });
  const m = rt.metrics;
  if (m) {
    const decision = out === 'completed' ? 'allowed' : out;
    // Positional label values: metrics/hot.ts finds the series without building a labels object.
    m.requests.at(x.agent ?? 'unknown', decision, x.error?.code ?? 'none').inc();
    m.requestDuration.at(decision).observe(durationMs / 1000);
    for (const i of x.injections) m.injections.at(i.secret).inc();
    if (x.alert) m.outboundSecrets.at(x.alert.secret).inc();
  }
}
