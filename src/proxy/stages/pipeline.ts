/**
 * The request pipeline, in request order, in one array:
 *
 *   validate → identify → target → decide → inject → forward (guarded connect, send, scrub the response)
 *
 * A stage fills in the exchange or throws a TurretError. Only `fail` (via respond.ts) turns an
 * error into bytes; `finish` always runs and writes exactly one audit record and the metrics.
 * Interception happens before this pipeline (connect.ts) and feeds every request inside a tunnel
 * through it again, so each inner request is decided on its own.
 */
import { TurretError, asTurretError, isTurretError } from '../../core/errors.js';
import { stripQueryValues } from '../../audit/record.js';
import { MAX_PEEK_BYTES, mediaType, needsBody } from '../../policy/catalog.js';
import { decide } from '../../policy/decide.js';
import { methodOverrides } from '../../policy/override.js';
import { toolListFilter } from '../../policy/capability.js';
import { limitChecks } from '../../policy/ratelimit.js';
import { asksWebSocket } from '../../policy/request.js';
import { DEFAULT_TAINT_TTL_MS } from '../../policy/taint.js';
import { injectRequest, type RequestInjection } from '../../secrets/request.js';
import type { InjectContext } from '../../secrets/resolve.js';
import type { Secret } from '../../secrets/secret.js';
import type { Scrubber } from '../../scrub/scrubber.js';
import type { Decision, RequestFacts, SecretSource } from '../../policy/types.js';
import { requestHasBody } from '../../secrets/body.js';
import { routed, targetUrl, type ClientRequest, type Exchange, type ResolvedTarget } from './exchange.js';
import { askOperator } from './ask.js';
import { finishExchange } from './finish.js';
import { forward, forwardThen } from './forward.js';
import { checkLookalike } from './guards.js';
import { upstreamRequestHeaders } from './headers.js';
import { boundAgent } from '../bound.js';
import { authenticate } from './identify.js';
import { checkHead, planBodyCheck, type OutboundFind } from './outbound.js';
import { sendError } from './respond.js';
import type { Runtime } from '../runtime.js';
import { checkHostHeader, targetFromAbsolute, targetInTunnel } from './target.js';
import { MALFORMED_REASON, validateRequest } from './validate.js';

interface Stage {
  name: 'validate' | 'identify' | 'target' | 'decide' | 'inject' | 'forward';
  run(x: Exchange, rt: Runtime): void | Promise<void>;
}

/**
 * The callbacks every exchange of one runtime passes on (they read only the runtime): made once
 * per runtime, not as closures per request.
 */
interface RuntimeHooks {
  isRevoked: InjectContext['isRevoked'];
  secretValue: InjectContext['secretValue'];
  revoke: InjectContext['revoke'];
  load: (name: string, src: SecretSource) => Secret | null;
  redaction: (type: string) => void;
  latency: (scheme: 'http' | 'https', seconds: number) => void;
}

const hooksByRuntime = new WeakMap<Runtime, RuntimeHooks>();

function hooksOf(rt: Runtime): RuntimeHooks {
  let h = hooksByRuntime.get(rt);
  if (!h) {
    h = {
      isRevoked: (id) => rt.shared.isRevoked(id),
      secretValue: (def) => rt.secretValue(def),
      revoke: (c) => void rt.shared.revoke(c.id, c.exp).catch(() => rt.log.error('revocation could not be written', { handle_id: c.id })),
      load: (name, src) => rt.values.load(name, src),
      redaction: (type) => rt.metrics?.redactions.at(type).inc(),
      latency: (scheme, s) => rt.metrics?.upstreamLatency.at(scheme).observe(s),
    };
    hooksByRuntime.set(rt, h);
  }
  return h;
}

/** What resolving a handle of this exchange needs (the inject stage; WebSocket messages too). */
export function injectContext(x: Exchange, rt: Runtime, agent: string, t: ResolvedTarget): InjectContext {
  const h = hooksOf(rt);
  return {
    ring: rt.ring,
    policy: x.state.policy,
    isRevoked: h.isRevoked,
    secretValue: h.secretValue,
    revoke: h.revoke,
    agent,
    method: x.req.method ?? 'GET',
    scheme: t.scheme,
    host: t.host,
    port: t.port,
    path: t.path,
  };
}

export const STAGES: readonly Stage[] = [
  {
    name: 'validate',
    run(x, rt) {
      rt.assertServing();
      if (x.malformed) throw new TurretError('bad_request', MALFORMED_REASON);
      validateRequest(x.req);
    },
  },
  {
    name: 'identify',
    run(x, rt) {
      if (x.tunnel) return; // the tunnel's CONNECT was authenticated
      // A connection that came through a run's bridge (listen/bridge.ts) was authenticated when it opened.
      x.agent = boundAgent(x.req.socket) ?? authenticate(rt, x.req, x.req.socket.remoteAddress, x.state.policy, x.req.socket);
    },
  },
  {
    name: 'target',
    run(x) {
      const url = x.req.url ?? '';
      x.target = x.tunnel ? targetInTunnel(x.tunnel, url, x.req.headers.host) : checkHostHeader(targetFromAbsolute(url), x.req.headers.host);
    },
  },
  {
    name: 'decide',
    // Synchronous unless the rules need the body, an operator is asked or a rate limit is taken:
    // the common request makes no promise here (docs/benchmarks.md, "Sixth pass").
    run(x, rt) {
      // A secret value in the target or a header is refused (and alerted) whatever the rules say,
      // checked as the agent sent it, before anything is injected (outbound.ts).
      checkHead(x.state.scrubbers.known(), x.req.url ?? '', x.req.rawHeaders, alertOf, x);
      const { agent, target: t } = routed(x);
      checkLookalike(x.state.policy, agent, t.host);
      const facts: RequestFacts = {
        agent,
        method: x.req.method ?? '',
        scheme: t.scheme,
        host: t.host,
        port: t.port,
        path: t.path,
        contentType: mediaType(x.req.headers['content-type']),
      };
      if (asksWebSocket(x.req.headers)) facts.websocket = true;
      if (!needsBody(x.state.policy, facts)) return decideOn(x, rt, facts);
      return peekBody(x.req, MAX_PEEK_BYTES).then((body) => {
        facts.body = body;
        return decideOn(x, rt, facts);
      });
    },
  },
  {
    name: 'inject',
    // Synchronous unless a SigV4 request is re-signed or a compressed body is read first: the
    // common request makes no promise here (docs/benchmarks.md, "Sixth pass").
    run(x, rt) {
      const { agent, target: t } = routed(x);
      const known = x.state.scrubbers.known();
      const headers = upstreamRequestHeaders(x.req.rawHeaders, t.host, t.port, t.scheme);
      const r = injectRequest(injectContext(x, rt, agent, t), {
        headers,
        target: t.path,
        reqHeaders: x.req.headers,
        reqBody: x.req,
        bodyExpected: requestHasBody(x.req.headers),
        load: hooksOf(rt).load,
        maxBuffered: rt.limits.maxBufferedBodyBytes,
      });
      return r instanceof Promise ? r.then((v) => injected(x, rt, t, known, v)) : injected(x, rt, t, known, r);
    },
  },
  {
    name: 'forward',
    // A request without a body (the common GET) has nothing to wait for before dialing, no body
    // check whose refusal would replace the error (outbound.ts sets none) and no body
    // substitutions to collect afterwards: its stage is forward()'s own promise, without an async
    // frame of its own (docs/benchmarks.md, "Seventh pass").
    run(x, rt) {
      if (requestHasBody(x.req.headers) || x.bodyPlan?.body.buffered) return forwardWithBody(x, rt);
      if (x.malformed) throw new TurretError('bad_request', MALFORMED_REASON);
      const hooks = hooksOf(rt);
      return forward(x, x.state.scrubbers.get(x.injections), hooks.redaction, x.bodyPlan?.body, hooks.latency);
    },
  },
];

/** Where the forward stage is in STAGES. */
const FORWARD = STAGES.findIndex((s) => s.name === 'forward');

/** The forward stage of a request with a body. */
async function forwardWithBody(x: Exchange, rt: Runtime): Promise<void> {
  // The parser may have failed in this request's body since the head arrived: let the rest of
  // the segment be parsed before dialing (validate.ts explains why one macrotask suffices).
  if (requestHasBody(x.req.headers)) await new Promise<void>((resolve) => setImmediate(resolve));
  if (x.malformed) throw new TurretError('bad_request', MALFORMED_REASON);
  const scrubber = x.state.scrubbers.get(x.injections);
  const inj = x.bodyPlan;
  try {
    const hooks = hooksOf(rt);
    await forward(x, scrubber, hooks.redaction, inj?.body, hooks.latency);
  } catch (e) {
    // The body check aborted the upstream request: whatever undici reports, that is the cause.
    if (x.alert) throw x.outbound?.refusal(x.alert) ?? e;
    throw e;
  } finally {
    // Body substitutions happen while the body streams; the audit record names them too.
    if (inj) x.injections = [...inj.used.values()];
  }
}

/** The decision on the request's facts; an `ask` waits for the operator. */
function decideOn(x: Exchange, rt: Runtime, facts: RequestFacts): void | Promise<void> {
  const session = sessionOf(x);
  facts.taints = rt.taints.get(session);
  const d = decide(x.state.policy, facts);
  x.decision = d;
  if (d.allow || !d.ask) return allowed(x, rt, facts, d, session);
  return askOperator(x, rt, { ...d, ask: d.ask }).then((a) => {
    x.decision = a;
    return allowed(x, rt, facts, a, session);
  });
}

/** Refused, or allowed: method overrides decided too, then any rate limit taken. */
function allowed(x: Exchange, rt: Runtime, facts: RequestFacts, d: Decision, session: string): void | Promise<void> {
  if (!d.allow) throw new TurretError(d.code ?? 'policy_denied', d.reason, { rule: d.rule?.id });
  for (const o of methodOverrides(x.req.headers, facts.path)) {
    if ('invalid' in o) throw new TurretError('bad_request', `${o.header} must name a method`);
    if (o.method === facts.method) continue;
    const od = decide(x.state.policy, { ...facts, method: o.method, websocket: false });
    if (!od.allow) throw new TurretError(od.code ?? 'policy_denied', `the request asks the upstream to treat it as ${o.method} (${o.header}); ${od.reason}`, { rule: od.rule?.id });
  }
  // No limit applies (the common case): nothing to take, so no round trip to the shared state.
  const checks = limitChecks(x.state.policy, facts.agent, d.rule);
  if (checks.length === 0) return decided(x, rt, facts, d, session);
  return rt.shared.take(checks).then((lim) => {
    if (!lim.ok)
      throw new TurretError('rate_limited', `${lim.label} allows ${lim.spec.source}; retry after ${lim.retryAfterS}s`, { rule: d.rule?.id, retryAfterS: lim.retryAfterS });
    decided(x, rt, facts, d, session);
  });
}

function decided(x: Exchange, rt: Runtime, facts: RequestFacts, d: Decision, session: string): void {
  if (d.rule?.taints.length) rt.taints.add(session, d.rule.taints, { request: x.id, rule: d.rule.id }, x.state.policy.settings.taintTtlMs ?? DEFAULT_TAINT_TTL_MS);
  x.toolFilter = toolListFilter(d.rule, facts.body);
}

/** After injection: the body check is planned, then the exchange takes the injected request. */
function injected(x: Exchange, rt: Runtime, t: ResolvedTarget, known: Scrubber, r: RequestInjection): void | Promise<void> {
  // No body, nothing to check (planBodyCheck returns at once): no listener made for it.
  if (!requestHasBody(x.req.headers)) return takeInjection(x, t, r);
  const planned = planBodyCheck(x, r.body, known, (f) => alertOf(f, x), rt.limits.maxBufferedBodyBytes);
  if (planned === undefined) return takeInjection(x, t, r);
  return planned.then(() => takeInjection(x, t, r));
}

/** A secret found in the request: the exchange's alert (its record names the secret, never the value). */
function alertOf(f: OutboundFind, x: Exchange): void {
  x.alert = { code: 'secret_in_request', ...f };
}

function takeInjection(x: Exchange, t: ResolvedTarget, r: RequestInjection): void {
  x.upstreamHeaders = r.headers;
  x.injections = r.injections;
  x.target = { ...t, path: r.target };
  x.bodyPlan = r;
}

/** The session whose labels a request reads and adds (policy/taint.ts): the agent. */
function sessionOf(x: Exchange): string {
  return `agent:${routed(x).agent}`;
}

/**
 * Runs the stages on an exchange a listener created (and tracks); always ends in finish, exactly
 * once. Never throws and never rejects: its callers do not wait for it (listen/connection.ts).
 *
 * Synchronous while the stages are: a request without a body whose stages before forward did not
 * wait (the common GET) is handed to forwardThen, which finishes the exchange from its own
 * callbacks (`forwarded`), with no async frame and no promise per request here. A stage that
 * waits continues in runFrom, as the stages always ran (docs/benchmarks.md "Hot path → Thirteenth
 * pass → flowfast").
 */
export function runExchange(rt: Runtime, x: Exchange): void {
  try {
    for (let i = 0; i < STAGES.length; i++) {
      if (i === FORWARD && forwardsAlone(x)) return forwardThen(x, x.state.scrubbers.get(x.injections), hooksOf(rt).redaction, hooksOf(rt).latency, rt, forwarded);
      const pending = (STAGES[i] as Stage).run(x, rt);
      // A stage that finished synchronously is not awaited: `await undefined` still costs a
      // microtask turn and its promise (validate, identify and target never wait).
      if (pending !== undefined) return void runFrom(rt, x, i + 1, pending);
    }
  } catch (e) {
    failed(rt, x, e);
  }
  finishExchange(x, rt);
}

/** The forward stage of a GET-like request runs without a promise: no body, nothing buffered. */
function forwardsAlone(x: Exchange): boolean {
  return !requestHasBody(x.req.headers) && !x.bodyPlan?.body.buffered && !x.malformed;
}

/** forwardThen's outcome: the exchange finishes (after failing, when it did). */
function forwarded(rt: Runtime, x: Exchange, err: unknown): void {
  if (err !== undefined) failed(rt, x, err);
  finishExchange(x, rt);
}

/** The stages from `i` on, once `pending` (stage i - 1's) settled. */
async function runFrom(rt: Runtime, x: Exchange, i: number, pending: Promise<void>): Promise<void> {
  try {
    await pending;
    for (; i < STAGES.length; i++) {
      const next = (STAGES[i] as Stage).run(x, rt);
      if (next !== undefined) await next;
    }
  } catch (e) {
    failed(rt, x, e);
  } finally {
    finishExchange(x, rt);
  }
}

/** A stage failed: the exchange's error is set and answered. Never throws. */
function failed(rt: Runtime, x: Exchange, e: unknown): void {
  // A stage that failed because the exchange was ended early (client gone, timeouts, drain)
  // reports that cause, not the error it saw as a consequence (ending.ts).
  x.error = isTurretError(e) ? e : (x.ending?.cause ?? asTurretError(e));
  // Whatever failed downstream of a body the parser refused, the client's fault is the cause.
  if (x.malformed && x.error.code !== 'bad_request') x.error = new TurretError('bad_request', MALFORMED_REASON);
  if (x.error.code === 'internal_error') rt.log.error('request failed', { request_id: x.id, error: String((e as Error)?.stack ?? e) });
  try {
    fail(x, x.error);
  } catch {
    // Answering failed too (a bug): the response is cut. The record still names the first cause.
    x.res.destroy();
  }
}

function fail(x: Exchange, err: TurretError): void {
  // A body the parser refused was answered 400 by server.ts already; that answer stands.
  if (x.malformed) {
    x.status = 400;
    if (x.res.headersSent) return;
  }
  const scrub = x.state.scrubbers.get(x.injections);
  const target = targetUrl(x.target, stripQueryValues);
  if (!x.res.headersSent) x.status = err.status;
  sendError(x.res, err, { method: x.req.method, target, scrub: (s) => scrub.scrubString(s).text });
}

/**
 * Read a body of known length (at most `limit` bytes, not content-encoded) for the GraphQL catalog,
 * then push it back so forward() still streams all of it. The unshift happens in the same tick as
 * the last read, before the stream can emit 'end'. Anything else → null (classified as a write).
 */
async function peekBody(req: ClientRequest, limit: number): Promise<string | null> {
  const len = Number(req.headers['content-length']);
  if (!Number.isInteger(len) || len <= 0 || len > limit || req.headers['content-encoding']) return null;
  const chunks: Buffer[] = [];
  let got = 0;
  while (got < len) {
    const c = req.read() as Buffer | null;
    if (c) {
      chunks.push(c);
      got += c.length;
      continue;
    }
    if (req.readableEnded || req.destroyed) break;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        req.off('readable', done).off('end', done).off('close', done);
        resolve();
      };
      req.on('readable', done).on('end', done).on('close', done);
    });
  }
  if (got > 0) req.unshift(Buffer.concat(chunks));
  return got === len ? Buffer.concat(chunks).toString('utf8') : null;
}
