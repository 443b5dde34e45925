/**
 * Which secrets an agent could ever use: a secret is usable when some allow (or ask) rule that
 * applies to the agent (not expired, not a passthrough — a passthrough tunnel is never opened, so nothing is
 * injected into it) allows a host the secret is bound to. `turret env` / `turret run` issue
 * handles only for these (issue #12, item 7): a handle for a secret no rule lets the agent send
 * anywhere is only something to leak.
 *
 * Hosts are compared as pattern sets (two patterns overlap when some host:port matches both).
 * Methods and paths are deliberately not compared: a rule's catalog entries (git, GraphQL) and
 * regex paths make "could a request match both" undecidable in general, and a handle withheld
 * wrongly breaks a working client, while one issued wrongly is still refused at use.
 */
import type { HostPattern, Policy, Rule, SecretDef } from './types.js';

/** The ports a pattern admits: null = the scheme default (80 or 443). */
function portsOverlap(a: HostPattern['port'], b: HostPattern['port']): boolean {
  if (a === 'any' || b === 'any') return true;
  if (a === null && b === null) return true;
  if (a === null) return b === 80 || b === 443;
  if (b === null) return a === 80 || a === 443;
  return a === b;
}

function namesOverlap(a: HostPattern, b: HostPattern): boolean {
  if (a.kind === 'any' || b.kind === 'any') return true;
  if (a.kind === 'exact' && b.kind === 'exact') return a.host === b.host;
  if (a.kind === 'suffix' && b.kind === 'suffix') return a.host === b.host || a.host.endsWith(`.${b.host}`) || b.host.endsWith(`.${a.host}`);
  const [exact, suffix] = a.kind === 'exact' ? [a, b] : [b, a];
  return exact.host.endsWith(`.${suffix.host}`);
}

/** Some host:port is matched by both patterns. */
export function hostPatternsOverlap(a: HostPattern, b: HostPattern): boolean {
  return portsOverlap(a.port, b.port) && namesOverlap(a, b);
}

function ruleAppliesTo(rule: Rule, agent: string, now: number): boolean {
  // An ask rule can let the request through once an operator approves it.
  if (rule.action === 'deny' || rule.passthrough) return false;
  if (rule.until !== null && rule.until <= now) return false;
  return rule.agents === 'any' || rule.agents.has(agent);
}

/** The rule that lets `agent` use `secret`, or null when none does. */
export function ruleUsingSecret(policy: Policy, agent: string, secret: SecretDef, now = Date.now()): Rule | null {
  for (const rule of policy.rules) {
    if (!ruleAppliesTo(rule, agent, now)) continue;
    if (rule.hosts.some((rh) => secret.hosts.some((sh) => hostPatternsOverlap(rh, sh)))) return rule;
  }
  return null;
}

/** Secrets `agent` could use (in definition order). */
export function secretsUsableBy(policy: Policy, agent: string, now = Date.now()): SecretDef[] {
  return [...policy.secrets.values()].filter((s) => ruleUsingSecret(policy, agent, s, now) !== null);
}
