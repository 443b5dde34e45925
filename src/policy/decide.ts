/**
 * decide(policy, request, now) → Decision. Pure: no I/O; the clock is an argument.
 *
 * Semantics (docs/rules.md, precedence):
 *  1. TRACE, TRACK and CONNECT (inside a tunnel) are refused before any rule is read.
 *  2. Deny rules win: if any deny rule matches, the request is refused, whatever allows it.
 *  3. Otherwise the first allow rule that matches, in file order (files sorted by name), decides.
 *     Every allow only allows, so order changes which rule is *reported* (and whose rate limit
 *     applies), never whether a request passes.
 *  4. Nothing matched: denied (default deny), with the nearest miss as the reason.
 * A rule whose `until` has passed matches nothing, at once, without a reload.
 */
import type { ErrorCode } from '../core/errors.js';
import { bodySchemaProblem, capabilityVerdict, taintMiss } from './capability-decide.js';
import { classify, type Shape } from './catalog.js';
import { FORBIDDEN_METHODS, READ_METHODS, foldedViews, hostMatches, hostPortMatches, pathViews } from './match.js';
import { queryValues } from './catalog.js';
import type { Decision, Policy, RequestFacts, Rule } from './types.js';

type Verdict = { kind: 'skip' } | { kind: 'miss'; why: string; code: ErrorCode } | { kind: 'match'; shape: Shape | null };

interface Ctx {
  views: string[];
  /** Case-folded spellings of the views (fold.ts): deny rules match these too. */
  folded: string[];
  shapes: Shape[];
  now: number;
}

const READS: ReadonlySet<string> = new Set(READ_METHODS);

// A rule's label and its allow reason depend on its configuration alone (name, id, origin): made
// once per rule object, not per request (a reload or an added entry makes new rule objects, which
// start without). Each decision is still made per request; only these strings are kept.
const labels = new WeakMap<Rule, string>();
const allowReasons = new WeakMap<Rule, string>();

export function ruleLabel(r: Rule): string {
  let l = labels.get(r);
  if (l === undefined) {
    l = `rule ${r.name} (${r.id}${r.origin ? `, ${r.origin}` : ''})`;
    labels.set(r, l);
  }
  return l;
}

function allowReason(r: Rule): string {
  let s = allowReasons.get(r);
  if (s === undefined) {
    s = `allowed by ${ruleLabel(r)}`;
    allowReasons.set(r, s);
  }
  return s;
}

// The verdicts without a detail, shared (callers only read them).
const SKIP: Verdict = { kind: 'skip' };
const MATCH_NO_SHAPE: Verdict = { kind: 'match', shape: null };

function agentMatches(rule: Rule, agent: string): boolean {
  return rule.agents === 'any' || rule.agents.has(agent);
}

function literalMethod(rule: Rule, method: string): boolean {
  return rule.methods === 'any' ? !FORBIDDEN_METHODS.has(method) : rule.methods.has(method);
}

/** Does the rule's method list cover this request? Catalog shapes count only where the rule opted in. */
function methodCovered(rule: Rule, req: RequestFacts, shape: Shape | null): boolean {
  const method = req.method;
  if (req.websocket) {
    // An upgrade opens a channel for any message: only `websocket` or `any` allows it. A deny on
    // its method (GET, read) still refuses it, so a deny is never narrower than it looks.
    if (rule.methods === 'any' || rule.classes.websocket) return true;
    return rule.action === 'deny' && literalMethod(rule, method);
  }
  if (!shape) return literalMethod(rule, method);
  const byClass = shape.kind === 'read' ? rule.classes.read : rule.classes.write;
  // For an allow, a write-shaped GET (git push discovery) needs the write class, not "GET";
  // for a deny, either reading counts, so a deny is never narrower than it looks.
  if (rule.action === 'deny') return byClass || literalMethod(rule, method);
  return shape.kind === 'read' ? byClass || literalMethod(rule, method) : byClass;
}

function evaluate(rule: Rule, req: RequestFacts, ctx: Ctx): Verdict {
  if (!agentMatches(rule, req.agent)) return SKIP;
  if (!hostsMatch(rule, req)) return SKIP;
  if (rule.until !== null && ctx.now >= rule.until) return { kind: 'miss', why: `${ruleLabel(rule)} expired at ${new Date(rule.until).toISOString()}`, code: 'policy_denied' };
  if (!rule.schemes.has(req.scheme)) return { kind: 'miss', why: `${ruleLabel(rule)} covers this host only over ${[...rule.schemes].join(', ')}`, code: 'policy_denied' };
  const tainted = taintMiss(rule, req);
  if (tainted) return { kind: 'miss', why: `${ruleLabel(rule)} ${tainted}`, code: 'session_tainted' };
  // A JSON-RPC body under a rule with the mcp/jsonrpc catalog entry is decided element by element.
  const rpc = req.websocket ? null : capabilityVerdict(rule, req, literalMethod(rule, req.method));
  if (rpc && !rpc.ok) return rule.action === 'deny' ? SKIP : { kind: 'miss', why: `${ruleLabel(rule)} does not cover it: ${rpc.why}`, code: 'policy_denied' };
  const shape = rpc?.ok ? rpc.shape : (ctx.shapes.find((s) => rule.catalog.has(s.entry)) ?? null);
  if (!rpc && !methodCovered(rule, req, shape)) {
    const what = req.websocket ? ', and this is a WebSocket upgrade (needs websocket or any)' : shape ? `, and this is a ${shape.what}` : '';
    return { kind: 'miss', why: `${ruleLabel(rule)} covers only ${rule.methodSource.join(', ')} to this host${what}`, code: 'policy_denied' };
  }
  if (rule.paths) {
    const hit = (v: string): boolean => rule.paths!.some((p) => p.test(v));
    // An allow must hold for every view of the path; a deny applies if any view matches, or any
    // case-folded view matches the folded pattern (servers that ignore letter case).
    const ok = rule.action !== 'deny' ? ctx.views.every(hit) : ctx.views.some(hit) || ctx.folded.some((v) => rule.paths!.some((p) => p.testFolded(v)));
    if (!ok) return { kind: 'miss', why: `${ruleLabel(rule)} covers only paths ${rule.paths.map((p) => p.source).join(', ')}`, code: 'policy_denied' };
  }
  for (const q of rule.query) {
    const values = queryValues(req.path, q.key);
    const ok = q.kind === 'present' ? values.length > 0 : q.kind === 'absent' ? values.length === 0 : values.length > 0 && values.every(q.test);
    if (!ok) return { kind: 'miss', why: `${ruleLabel(rule)} requires query ${q.source}`, code: 'policy_denied' };
  }
  if (rule.bodySchema) {
    const problem = bodySchemaProblem(rule.bodySchema, req.body);
    if (problem) return { kind: 'miss', why: `${ruleLabel(rule)} requires a JSON body matching its schema (${rule.bodySchema.source}): ${problem}`, code: 'body_schema_invalid' };
  }
  // A WebSocket carries writes as messages: over plain HTTP it needs `http` in schemes like a write.
  const write = req.websocket === true || (shape ? shape.kind === 'write' : !READS.has(req.method));
  if (rule.action !== 'deny' && write && req.scheme === 'http' && !rule.plainHttpWrites) {
    return { kind: 'miss', why: `${ruleLabel(rule)} allows writes only over HTTPS (list http under schemes: to allow plain HTTP writes)`, code: 'https_required' };
  }
  return shape === null ? MATCH_NO_SHAPE : { kind: 'match', shape };
}

function hostsMatch(rule: Rule, req: RequestFacts): boolean {
  for (const h of rule.hosts) if (hostMatches(h, req.host, req.port, req.scheme)) return true;
  return false;
}

// The normalised and case-folded views of a path are a pure function of its text, and an agent
// repeats the same paths: kept per spelling (short paths only, bounded), they are not rebuilt for
// every request (~1.5% of a small request's CPU, docs/benchmarks.md "Hot path", fourth pass).
const MAX_VIEWS_KEPT = 1024;
const MAX_KEPT_PATH = 512;
const keptViews = new Map<string, { views: string[]; folded: string[] }>();

function viewsOf(path: string): { views: string[]; folded: string[] } {
  let v = keptViews.get(path);
  if (v === undefined) {
    const views = pathViews(path);
    v = { views, folded: foldedViews(views) };
    if (path.length <= MAX_KEPT_PATH) {
      if (keptViews.size >= MAX_VIEWS_KEPT) keptViews.clear();
      keptViews.set(path, v);
    }
  }
  return v;
}

function context(req: RequestFacts, now: number): Ctx {
  const { views, folded } = viewsOf(req.path);
  // Classify on every view; where views disagree, a write classification wins. An upgrade is
  // judged by the websocket class alone, never by a catalog shape.
  // One view (most paths): classify's own fresh array, without flatMap's copy and closure.
  const shapes = req.websocket ? [] : views.length === 1 ? classify(req, views[0]!) : views.flatMap((v) => classify(req, v));
  if (shapes.length > 1) shapes.sort(writesFirst);
  return { views, folded, shapes, now };
}

/** Write shapes before read ones (one comparator for every request, not a closure per call). */
function writesFirst(a: Shape, b: Shape): number {
  return a.kind === b.kind ? 0 : a.kind === 'write' ? -1 : 1;
}

export interface Trace {
  rule: Rule;
  verdict: string;
}

/** decide() plus what each rule that names the agent and host said, for `turret rules explain`. */
export function explain(policy: Policy, req: RequestFacts, now: number = Date.now()): { decision: Decision; trace: Trace[] } {
  const ctx = context(req, now);
  const trace: Trace[] = [];
  for (const rule of policy.rules) {
    const v = evaluate(rule, req, ctx);
    if (v.kind === 'skip') continue;
    const why = v.kind === 'miss' ? v.why.replace(`${ruleLabel(rule)} `, '') : '';
    const verb = rule.action === 'deny' ? 'denies' : rule.action === 'ask' ? 'asks an operator' : 'allows';
    trace.push({ rule, verdict: v.kind === 'match' ? `${verb}${v.shape ? ` (${v.shape.what})` : ''}` : `does not apply: ${why}` });
  }
  return { decision: decideWith(policy, req, ctx), trace };
}

export function decide(policy: Policy, req: RequestFacts, now: number = Date.now()): Decision {
  return decideWith(policy, req, context(req, now));
}

function decideWith(policy: Policy, req: RequestFacts, ctx: Ctx): Decision {
  if (FORBIDDEN_METHODS.has(req.method)) {
    return { allow: false, rule: null, code: 'method_forbidden', reason: `${req.method} is never allowed through the proxy` };
  }
  for (const rule of policy.rules) {
    if (rule.action !== 'deny') continue;
    const v = evaluate(rule, req, ctx);
    if (v.kind === 'match')
      return { allow: false, rule, code: 'policy_denied', reason: `denied by ${ruleLabel(rule)}${rule.description ? `: ${rule.description}` : ''}`, shape: v.shape?.what ?? null };
  }
  let miss: { rule: Rule; why: string; code: ErrorCode } | null = null;
  for (const rule of policy.rules) {
    if (rule.action !== 'allow') continue;
    const v = evaluate(rule, req, ctx);
    if (v.kind === 'match') {
      return { allow: true, rule: withHostExceptions(policy, rule, req, ctx.now), code: null, reason: allowReason(rule), shape: v.shape?.what ?? null };
    }
    // The first miss is the nearest; a miss with its own code (HTTPS only, body schema, session
    // label) says more than a plain one, so it is the one reported.
    if (v.kind === 'miss' && (!miss || (v.code !== 'policy_denied' && miss.code === 'policy_denied'))) miss = { rule, why: v.why, code: v.code };
  }
  // No allow: an ask rule that matches puts the request to an operator (proxy/approvals.ts).
  for (const rule of policy.rules) {
    if (rule.action !== 'ask') continue;
    const v = evaluate(rule, req, ctx);
    if (v.kind === 'match') {
      return {
        allow: false,
        ask: withHostExceptions(policy, rule, req, ctx.now),
        rule,
        code: 'approval_denied',
        reason: `${ruleLabel(rule)} asks an operator to decide`,
        shape: v.shape?.what ?? null,
      };
    }
    if (v.kind === 'miss' && (!miss || (v.code !== 'policy_denied' && miss.code === 'policy_denied'))) miss = { rule, why: v.why, code: v.code };
  }
  const shown = ctx.views[0] ?? '/';
  const base = `no rule allows ${req.websocket ? 'a WebSocket upgrade (GET)' : req.method} ${req.scheme}://${req.host}:${req.port}${shown} for agent ${req.agent}`;
  return { allow: false, rule: miss?.rule ?? null, code: miss?.code ?? 'policy_denied', reason: miss ? `${base}; ${miss.why}` : base };
}

/**
 * Address exceptions belong to a host, not to the rule that happened to allow a request: when the
 * deciding rule has none, those of a live allow rule for this agent naming this exact host apply.
 * (forward.ts reads them from the decision's rule.)
 */
function withHostExceptions(policy: Policy, rule: Rule, req: RequestFacts, now: number): Rule {
  if (rule.addressExceptions.length > 0) return rule;
  const ex = exceptionRuleFor(policy, req.agent, req.host, req.port, now);
  return ex ? { ...rule, addressExceptions: ex.addressExceptions } : rule;
}

/**
 * May this agent open a tunnel to host:port at all? Yes when a live allow rule for the agent names
 * the host and port, and no deny rule refuses the whole host (any method, any path, no query
 * condition). Each request inside the tunnel is then decided on its own by the current rules.
 */
export function decideTunnel(policy: Policy, agent: string, host: string, port: number, now: number = Date.now()): Decision {
  const live = (r: Rule): boolean => agentMatches(r, agent) && (r.until === null || now < r.until) && r.hosts.some((h) => hostPortMatches(h, host, port));
  for (const rule of policy.rules) {
    if (rule.action === 'deny' && live(rule) && rule.methods === 'any' && rule.paths === null && rule.query.length === 0 && rule.schemes.has('https')) {
      return { allow: false, rule, code: 'policy_denied', reason: `denied by ${ruleLabel(rule)}${rule.description ? `: ${rule.description}` : ''}` };
    }
  }
  // An opaque tunnel only when a passthrough rule names the host and no deny rule touches it: a
  // deny rule limited to some paths or methods can only be enforced by intercepting.
  if (!policy.rules.some((r) => r.action === 'deny' && live(r))) {
    const pt = policy.rules.find((r) => r.action === 'allow' && r.passthrough && live(r));
    if (pt) return { allow: true, rule: pt, code: null, reason: `opaque tunnel (passthrough, not inspected) allowed by ${ruleLabel(pt)}`, passthrough: true };
  }
  for (const rule of policy.rules) {
    // An ask rule opens the tunnel too: each request inside is then put to an operator.
    if (rule.action !== 'deny' && live(rule)) return { allow: true, rule, code: null, reason: `tunnel allowed by ${ruleLabel(rule)}` };
  }
  return { allow: false, rule: null, code: 'policy_denied', reason: `no rule allows any request to ${host}:${port} for agent ${agent}` };
}

/** The live allow rule whose address exceptions apply to a connection to host:port, if any. */
export function exceptionRuleFor(policy: Policy, agent: string, host: string, port: number, now: number = Date.now()): Rule | null {
  for (const rule of policy.rules) {
    if (rule.action === 'deny' || rule.addressExceptions.length === 0 || !agentMatches(rule, agent)) continue;
    if (rule.until !== null && now >= rule.until) continue;
    if (rule.hosts.some((h) => h.kind === 'exact' && hostPortMatches(h, host, port))) return rule;
  }
  return null;
}
