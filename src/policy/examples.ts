/**
 * `examples:` in rule files: requests with the decision the operator expects. They run on every
 * load (start, `turret rules check`, each reload), so a change that breaks what the operator
 * wrote down is refused before it serves a single request.
 */
import { decide } from './decide.js';
import type { Example, Policy } from './types.js';

export interface ExampleFailure {
  example: Example;
  message: string;
}

export function runExamples(policy: Policy, now: number = Date.now()): ExampleFailure[] {
  const out: ExampleFailure[] = [];
  for (const ex of policy.examples) {
    const d = decide(policy, ex.request, now);
    const got = d.allow ? 'allow' : d.ask ? 'ask' : 'deny';
    if (got !== ex.expect) {
      out.push({
        example: ex,
        message: `example "${ex.text}" expects ${ex.expect}, but the rules ${got === 'allow' ? 'allow it' : got === 'ask' ? 'ask an operator' : 'deny it'}: ${d.reason}`,
      });
      continue;
    }
    if (ex.rule !== null && d.rule?.name !== ex.rule) {
      out.push({ example: ex, message: `example "${ex.text}" expects rule ${ex.rule} to decide, but ${d.rule ? `rule ${d.rule.name} (${d.rule.id})` : 'no rule'} did` });
      continue;
    }
    if (ex.code !== null && d.code !== ex.code) {
      out.push({ example: ex, message: `example "${ex.text}" expects code ${ex.code}, but got ${d.code ?? 'none (allowed)'}` });
    }
  }
  return out;
}
