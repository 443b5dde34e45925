/**
 * What the console pages show, gathered from the runtime: handles from the issuance log with
 * their status, per-agent limits and recent denials, secret status/age/fingerprint (which also
 * updates the secret age metrics).
 */
import { stripQueryValues } from '../../audit/record.js';
import { limitChecks } from '../../policy/ratelimit.js';
import { fingerprint } from '../../secrets/keys.js';
import type { Runtime } from '../runtime.js';
import type { AgentView, HandleView, SecretView } from './pages-state.js';

export async function handleViews(rt: Runtime, now = Date.now()): Promise<Array<HandleView & { exp: number }>> {
  const nowS = Math.floor(now / 1000);
  // The issuance records and revocations of the shared state (this host's files, or Redis).
  return (await rt.shared.listIssued())
    .map((r) => ({
      id: r.id,
      agent: r.agent,
      secret: r.secret,
      expires: new Date(r.exp * 1000).toISOString(),
      status: rt.shared.isRevoked(r.id) ? 'revoked' : r.exp <= nowS ? 'expired' : 'active',
      exp: r.exp,
    }))
    .reverse();
}

export async function agentViews(rt: Runtime): Promise<AgentView[]> {
  const policy = rt.state.policy;
  const handles = (await handleViews(rt)).filter((h) => h.status === 'active' || Date.parse(h.expires) > Date.now() - 24 * 3600_000);
  const denials = rt.feed.recent().filter((r) => r.outcome === 'denied');
  return [...policy.agents.values()].map((a) => ({
    name: a.name,
    where: a.where,
    handles: handles.filter((h) => h.agent === a.name).slice(0, 100),
    denials: denials
      .filter((r) => r.agent === a.name)
      .slice(0, 20)
      .map((r) => ({ ...r, path: r.path ? stripQueryValues(r.path) : r.path })),
    limits: limitChecks(policy, a.name, null).map((l) => `${l.spec.source} — ${l.label}`),
  }));
}

export function secretViews(rt: Runtime, now = Date.now()): SecretView[] {
  const out: SecretView[] = [];
  for (const def of rt.state.policy.secrets.values()) {
    const v = rt.secretValue(def);
    const changed = rt.values.changedAt(def.source);
    const ageS = v && changed ? Math.max(0, Math.round((now - changed.getTime()) / 1000)) : null;
    const maxAgeS = def.maxAgeMs !== null ? Math.round(def.maxAgeMs / 1000) : null;
    if (ageS !== null) rt.metrics?.secretAge.set({ secret: def.name }, ageS);
    if (maxAgeS !== null) rt.metrics?.secretStale.set({ secret: def.name }, ageS !== null && ageS > maxAgeS ? 1 : 0);
    out.push({
      name: def.name,
      source: rt.values.describe(def.source),
      status: v ? 'loaded' : 'missing',
      ageS,
      maxAgeS,
      fingerprint: v ? fingerprint(rt.ring, v.reveal()) : null,
      hosts: def.hosts.map((h) => h.source),
      where: def.where,
    });
  }
  return out;
}
