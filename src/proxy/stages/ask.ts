/**
 * The decide stage's `action: ask` branch: put the request to an operator (../approvals.ts) and
 * turn the verdict into a decision. Allowed → the request proceeds under the ask rule (its rate
 * limit, taints and address exceptions apply). Denied, timed out, cancelled or too many waiting
 * → a TurretError with its own code; the operator's message reaches the agent in the reason.
 */
import { stripQueryValues } from '../../audit/record.js';
import { TurretError } from '../../core/errors.js';
import { ruleLabel } from '../../policy/decide.js';
import type { Decision, Rule } from '../../policy/types.js';
import type { Runtime } from '../runtime.js';
import { routed, type Exchange } from './exchange.js';

export async function askOperator(x: Exchange, rt: Runtime, d: Decision & { ask: Rule }): Promise<Decision> {
  const rule = d.ask;
  const abort = new AbortController();
  // The client giving up (its connection closing) cancels the pending entry.
  const onClose = (): void => abort.abort();
  x.res.once('close', onClose);
  const { agent, target } = routed(x);
  const waiting = rt.approvals.ask(
    {
      agent,
      method: x.req.method ?? '',
      scheme: target.scheme,
      host: target.host,
      port: target.port,
      path: stripQueryValues(target.path),
      rule: { id: rule.id, name: rule.name, methods: rule.methodSource },
      reason: d.reason,
      requestId: x.id,
      secrets: [],
    },
    rule.askTimeoutMs ?? 60_000,
    abort.signal,
  );
  if (!waiting) throw new TurretError('approvals_full', `too many requests are waiting for an operator; ${ruleLabel(rule)} asks one to decide`, { rule: rule.id, retryAfterS: 30 });
  rt.log.info('request waits for an operator', { request_id: x.id, agent, host: target.host, rule: rule.id });
  const v = await waiting.finally(() => x.res.off('close', onClose));
  x.approval = v.note;
  if (v.allow) {
    const how = v.note.decision === 'allowed_for' ? `allowed until ${v.note.until ?? '?'}` : 'allowed once';
    return { allow: true, rule, code: null, reason: `${how} by ${v.note.by ?? 'an operator'} (approval ${v.note.id}) under ${ruleLabel(rule)}`, shape: d.shape ?? null };
  }
  switch (v.note.decision) {
    case 'denied':
      throw new TurretError('approval_denied', `an operator (${v.note.by ?? '?'}) refused it (approval ${v.note.id})${v.note.message ? `: ${v.note.message}` : ''}`, {
        rule: rule.id,
      });
    case 'cancelled':
      throw new TurretError('approval_cancelled', `the client gave up before an operator decided (approval ${v.note.id})`, { rule: rule.id });
    default:
      throw new TurretError(
        'approval_timeout',
        `no operator decided within ${Math.round((rule.askTimeoutMs ?? 60_000) / 1000)}s (approval ${v.note.id}); ${ruleLabel(rule)} asks one to decide`,
        { rule: rule.id },
      );
  }
}
