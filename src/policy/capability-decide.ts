/**
 * How decide.ts asks the capability checks (capability.ts) about one rule: JSON-RPC element
 * verdicts, body schemas and session labels. Each returns a fixed-phrase reason fragment that
 * follows the rule's label ("rule x (file:line) …").
 */
import { MCP_READ_METHODS, deniesElement, jsonBody, judgeElement, rpcElements, type BodySchema } from './capability.js';
import type { Shape } from './catalog.js';
import type { RequestFacts, Rule } from './types.js';

export type RpcVerdict = { ok: true; shape: Shape } | { ok: false; why: string };

function isRead(method: string | null): boolean {
  return method === null || method.startsWith('notifications/') || MCP_READ_METHODS.has(method);
}

/**
 * null when the rule does not decide this request by its JSON-RPC body (no mcp/jsonrpc catalog
 * entry, not a POST, or not a JSON-RPC message). Allow rules: ok when every element passes.
 * Deny rules: ok when some element is one the rule denies (a listed tool or method, or an element
 * of a class the rule's methods name).
 */
export function capabilityVerdict(rule: Rule, req: RequestFacts, postListed: boolean): RpcVerdict | null {
  const entry = rule.catalog.has('mcp') ? 'mcp' : rule.catalog.has('jsonrpc') ? 'jsonrpc' : null;
  if (!entry || req.method !== 'POST') return null;
  const elements = rpcElements(req.body);
  if (!elements) return null;
  const batch = elements.length > 1 ? ` (batch of ${elements.length})` : '';
  if (rule.action === 'deny') {
    for (const e of elements) {
      const named = deniesElement(rule, e);
      const byClass = entry === 'mcp' && !(rule.mcp?.tools && e.method === 'tools/call') && (isRead(e.method) ? rule.classes.read : rule.classes.write);
      if (named || byClass) return { ok: true, shape: { entry, kind: isRead(e.method) ? 'read' : 'write', what: `${named ?? `MCP ${e.method ?? 'response'}`}${batch}` } };
    }
    return { ok: false, why: 'names no element of this JSON-RPC body' };
  }
  const canRead = rule.classes.read || postListed;
  const whats: string[] = [];
  let write = false;
  for (const e of elements) {
    const v = judgeElement(rule, e, canRead, rule.classes.write);
    if (!v.ok) return { ok: false, why: `${v.why}${batch ? `; one refused element refuses the whole batch${batch}` : ''}` };
    whats.push(v.what);
    if (!isRead(e.method)) write = true;
  }
  return { ok: true, shape: { entry, kind: write ? 'write' : 'read', what: whats.slice(0, 5).join(', ') + (whats.length > 5 ? ', …' : '') } };
}

export function bodySchemaProblem(schema: BodySchema, body: string | null | undefined): string | null {
  const parsed = jsonBody(body);
  if (!parsed.ok) return parsed.problem;
  return schema.check(parsed.value);
}

/** "does not apply once …" when the session carries a label the rule excludes; null otherwise. */
export function taintMiss(rule: Rule, req: RequestFacts): string | null {
  if (rule.unlessTainted.length === 0 || !req.taints) return null;
  for (const label of rule.unlessTainted) {
    const m = req.taints.get(label);
    if (m) {
      const until = m.expires < 8.64e15 ? `, until ${new Date(m.expires).toISOString()}` : '';
      return `does not apply once the session is labelled "${label}" (added by request ${m.request}, rule ${m.rule}${until})`;
    }
  }
  return null;
}
