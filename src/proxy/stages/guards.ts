/**
 * Destination guards that sit beside the rules: look-alike host names, and the early address
 * check of a CONNECT target. Both run on the canonical host (net/host.ts) for absolute-form
 * requests and CONNECT alike, so a spelling cannot choose which path checks it.
 */
import { TurretError } from '../../core/errors.js';
import { compileExceptions, type AddressException } from '../../net/exceptions.js';
import { checkAddresses } from '../../net/connect.js';
import type { HostKind } from '../../net/host.js';
import { isMixedScriptLookalike } from '../../net/lookalike.js';
import { hostPortMatches } from '../../policy/match.js';
import type { Policy, Rule } from '../../policy/types.js';
import type { Metrics } from '../../metrics/metrics.js';
import type { PolicyState } from '../runtime.js';

function forAgent(rule: Rule, agent: string): boolean {
  return rule.agents === 'any' || rule.agents.has(agent);
}

/**
 * Refuse a look-alike host (mixed scripts, Latin-looking Cyrillic/Greek, non-ASCII symbols)
 * unless an allow rule for this agent names exactly that host. `*` and `*.suffix` do not count: an
 * operator who allows "*.example.com" has not vetted "xn--pple-43d.example.com".
 */
export function checkLookalike(policy: Policy, agent: string, host: string): void {
  if (!isMixedScriptLookalike(host)) return;
  const named = policy.rules.some((r) => r.action !== 'deny' && forAgent(r, agent) && r.hosts.some((h) => h.kind === 'exact' && h.host === host));
  if (named) return;
  throw new TurretError('dest_host_lookalike', `${host} mixes scripts or symbols that imitate other names; only a rule naming this exact host allows it`);
}

/**
 * The exceptions that could apply to a tunnel to host:port: the union over every rule of this
 * agent naming the host. The check at CONNECT time is the early, generous one; each request
 * inside the tunnel is checked again at connect time with the exceptions of the rule that
 * allowed it.
 */
function tunnelExceptions(policy: Policy, agent: string, host: string, port: number): AddressException[] {
  const out: AddressException[] = [];
  for (const r of policy.rules) {
    if (r.action === 'deny' || r.addressExceptions.length === 0 || !forAgent(r, agent)) continue;
    if (r.hosts.some((h) => h.kind !== 'any' && hostPortMatches(h, host, port))) out.push(...r.addressExceptions);
  }
  return out;
}

/**
 * Resolve and classify a CONNECT target before the tunnel opens, so a refused destination gets
 * a readable 403 (or 502 dns_failed) on the CONNECT itself instead of after a TLS handshake with
 * a minted leaf. It never dials: the connect inside the tunnel runs the full guarded connect.
 */
export async function checkTunnelTarget(
  rt: { selfAddresses: ReadonlySet<string>; metrics: Metrics | null },
  state: PolicyState,
  agent: string,
  t: { host: string; port: number; kind: HostKind },
): Promise<void> {
  const exceptions = tunnelExceptions(state.policy, agent, t.host, t.port);
  await checkAddresses({
    host: t.host,
    kind: t.kind,
    resolver: state.resolver,
    selfAddresses: rt.selfAddresses,
    ...(exceptions.length > 0 ? { permit: compileExceptions(exceptions) } : {}),
    onRefused: (c) => rt.metrics?.connectsRefused.inc({ class: c.class }),
  });
}
