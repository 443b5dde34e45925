/**
 * decide(policy, request) → Decision. Pure: no I/O, no clock beyond what the policy holds.
 *
 * Semantics: default deny; rules are allow rules tried in file order (files sorted by name);
 * the first rule whose agents, scheme, host/port, method and path all match decides. Because
 * every rule only allows, order changes which rule is *reported*, never whether a request passes.
 */
import { FORBIDDEN_METHODS, hostMatches, hostPortMatches, normalisePath } from './match.js';
import type { Decision, Policy, RequestFacts, Rule } from './types.js';

function agentMatches(rule: Rule, agent: string): boolean {
  return rule.agents === 'any' || rule.agents.has(agent);
}

function methodMatches(rule: Rule, method: string): boolean {
  return rule.methods === 'any' ? !FORBIDDEN_METHODS.has(method) : rule.methods.has(method);
}

export function decide(policy: Policy, req: RequestFacts): Decision {
  if (FORBIDDEN_METHODS.has(req.method)) {
    return { allow: false, rule: null, code: 'method_forbidden', reason: `${req.method} is never allowed through the proxy` };
  }
  const path = normalisePath(req.path);
  let nearMiss: { rule: Rule; why: string } | null = null;
  for (const rule of policy.rules) {
    if (!agentMatches(rule, req.agent)) continue;
    if (!rule.hosts.some((h) => hostMatches(h, req.host, req.port, req.scheme))) continue;
    if (!rule.schemes.has(req.scheme)) {
      nearMiss ??= { rule, why: `rule ${rule.name} (${rule.id}) allows this host only over ${[...rule.schemes].join(', ')}` };
      continue;
    }
    if (!methodMatches(rule, req.method)) {
      nearMiss ??= { rule, why: `rule ${rule.name} (${rule.id}) allows only ${rule.methodSource.join(', ')} to this host` };
      continue;
    }
    if (rule.paths && !rule.paths.some((p) => p.test(path))) {
      nearMiss ??= { rule, why: `rule ${rule.name} (${rule.id}) allows only paths ${rule.paths.map((p) => p.source).join(', ')}` };
      continue;
    }
    return { allow: true, rule, code: null, reason: `allowed by rule ${rule.name} (${rule.id})` };
  }
  const base = `no rule allows ${req.method} ${req.scheme}://${req.host}:${req.port}${path} for agent ${req.agent}`;
  return { allow: false, rule: nearMiss?.rule ?? null, code: 'policy_denied', reason: nearMiss ? `${base}; ${nearMiss.why}` : base };
}

/**
 * May this agent open a tunnel to host:port at all? True when some rule for the agent names the
 * host and port with any method; each request inside the tunnel is then decided on its own.
 */
export function decideTunnel(policy: Policy, agent: string, host: string, port: number): Decision {
  for (const rule of policy.rules) {
    if (!agentMatches(rule, agent)) continue;
    if (rule.hosts.some((h) => hostPortMatches(h, host, port))) {
      return { allow: true, rule, code: null, reason: `tunnel allowed by rule ${rule.name} (${rule.id})` };
    }
  }
  return { allow: false, rule: null, code: 'policy_denied', reason: `no rule allows any request to ${host}:${port} for agent ${agent}` };
}

/** The rule whose address exceptions apply to a connection to host:port, if any. */
export function exceptionRuleFor(policy: Policy, agent: string, host: string, port: number): Rule | null {
  for (const rule of policy.rules) {
    if (rule.addressExceptions.length === 0 || !agentMatches(rule, agent)) continue;
    if (rule.hosts.some((h) => h.kind !== 'any' && hostPortMatches(h, host, port))) return rule;
  }
  return null;
}
