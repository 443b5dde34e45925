/**
 * `turret rules check`: the same loader `start` uses (examples included), without starting
 * anything. `turret rules explain --agent A METHOD URL`: what the proxy would decide for that
 * request and why, from the same decide() the proxy runs; nothing is sent anywhere.
 */
import { loadPolicy } from '../config/load.js';
import { explain, ruleLabel } from '../policy/decide.js';
import { limitChecks } from '../policy/ratelimit.js';
import { assumedTaints, parseRequest } from '../policy/request.js';
import { out, rulesDir, UsageError, type CommonOptions } from './common.js';

export interface RulesOptions extends CommonOptions {
  agent?: string;
  contentType?: string;
  body?: string;
  websocket?: boolean;
  tainted?: string;
}

export async function rulesCommand(action: string, args: string[], o: RulesOptions): Promise<void> {
  switch (action) {
    case 'check': {
      const dir = rulesDir(o);
      const p = await loadPolicy(dir);
      out(`ok: ${p.files.length} file(s), ${p.agents.size} agent(s), ${p.secrets.size} secret(s), ${p.rules.length} rule(s), ${p.examples.length} example(s) passed in ${dir}`);
      return;
    }
    case 'explain':
      return explainCommand(args, o);
    default:
      throw new UsageError(`unknown action "rules ${action.slice(0, 40)}"; use: turret rules check | turret rules explain --agent A METHOD URL`);
  }
}

async function explainCommand(args: string[], o: RulesOptions): Promise<void> {
  if (args.length !== 2 || !o.agent)
    throw new UsageError(
      'usage: turret rules explain --agent NAME [--websocket] METHOD URL (METHOD may be websocket; for example: --agent demo POST https://api.github.com/repos/o/r/issues)',
    );
  const policy = await loadPolicy(rulesDir(o));
  const agent = String(o.agent);
  if (!policy.agents.has(agent)) throw new UsageError(`agent "${agent.slice(0, 40)}" is not defined in the rules (defined: ${[...policy.agents.keys()].join(', ') || 'none'})`);
  let req;
  try {
    req = parseRequest(agent, String(args[0]).toUpperCase(), String(args[1]), {
      contentType: o.contentType ?? null,
      body: o.body ?? null,
      websocket: o.websocket === true,
      taints: assumedTaints(o.tainted),
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { decision: d, trace } = explain(policy, req);
  out(`decision: ${d.allow ? 'allow' : d.ask ? 'ask an operator (action: ask; turret approvals or the console decides)' : `deny (${d.code ?? 'policy_denied'})`}`);
  out(`rule: ${d.rule ? `${d.rule.id} (${d.rule.name}${d.rule.origin ? `, ${d.rule.origin}` : ''})` : 'none'}`);
  out(`reason: ${d.reason}`);
  if (req.websocket) out('upgrade: websocket (allowed only by a rule listing websocket or any)');
  if (d.shape) out(`shape: ${d.shape}`);
  if (d.allow) {
    const limits = limitChecks(policy, agent, d.rule);
    for (const l of limits) out(`rate limit: ${l.spec.source} (${l.label}; not evaluated here)`);
  }
  if (trace.length > 0) {
    out('rules for this agent and host:');
    for (const t of trace) out(`  ${ruleLabel(t.rule)} [${t.rule.action}]: ${t.verdict}`);
  }
}
