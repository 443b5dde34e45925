/**
 * identify: who is asking. Agents authenticate to the proxy with
 * `Proxy-Authorization: Basic base64(agent:token)`. The token is the agent's `token:` source
 * from the rules, or, when the rules give none, a credential derived from the key file
 * (`turret env --agent NAME` prints it). Comparison is constant-time over digests. On container
 * networks an agent may instead be known by its source address (`sources:`, net/sources.ts).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { TurretError } from '../../core/errors.js';
import { sourceTableFor } from '../../net/sources.js';
import type { Policy } from '../../policy/types.js';
import { derivedAgentToken, type KeyRing } from '../../secrets/keys.js';
import type { SecretValues } from '../../secrets/sources.js';
import { AUTH_FAIL_BURST, AUTH_FAIL_REFILL_MS } from '../auth-throttle.js';
import type { Runtime } from '../runtime.js';
import { noteProven, provenBefore } from './auth-memo.js';

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

// Per request, plain HTTP authenticates every request: the derived credential (an HMAC) and the
// digest of the expected token are kept instead of recomputed (~4% of a plain HTTP request's
// CPU, docs/benchmarks.md "Hot path"). Both are functions of values that are themselves looked
// up per request (the key ring, the agent's token source), so a rotated token is used at once.
const MAX_KEPT = 1024;
const derived = new WeakMap<KeyRing, Map<string, string>>();
const expectedDigests = new Map<string, Buffer>();
/** What an unknown agent's credential is compared with (random: no token digests to it). */
const NO_AGENT_DIGEST = digest(`\0unknown\0${randomBytes(32).toString('hex')}`);

function keep<V>(m: Map<string, V>, k: string, make: () => V): V {
  let v = m.get(k);
  if (v === undefined) {
    v = make();
    if (m.size >= MAX_KEPT) m.clear();
    m.set(k, v);
  }
  return v;
}

export function expectedToken(policy: Policy, ring: KeyRing, values: SecretValues, agent: string): string | null {
  const def = policy.agents.get(agent);
  if (!def) return null;
  if (def.token === null) {
    let m = derived.get(ring);
    if (!m) derived.set(ring, (m = new Map()));
    return keep(m, agent, () => derivedAgentToken(ring, agent));
  }
  return values.load(`agent:${agent}`, def.token)?.reveal() ?? null;
}

/**
 * Returns the agent name, or throws 407. A Proxy-Authorization header, when present, decides
 * alone: a wrong credential is 407 even from an address that belongs to an agent, so a client
 * cannot probe credentials with the source address as a safety net, nor borrow a source
 * identity while pretending to authenticate. Without one, `remoteAddress` (the client socket's)
 * is looked up in the agents' `sources:` ranges.
 */
export function identifyAgent(headers: IncomingHttpHeaders, policy: Policy, ring: KeyRing, values: SecretValues, remoteAddress?: string): string {
  const raw = headers['proxy-authorization'];
  if (!raw) {
    const owner = sourceTableFor(policy.agents).lookup(remoteAddress);
    if (owner) return owner.agent;
    throw new TurretError('proxy_auth_required', 'the request carries no Proxy-Authorization credential and its source address belongs to no agent');
  }
  const m = /^basic[ \t]+([A-Za-z0-9+/=]+)\s*$/i.exec(raw);
  if (!m) throw new TurretError('proxy_auth_invalid', 'Proxy-Authorization must use the Basic scheme (agent:token)');
  const decoded = Buffer.from(m[1] ?? '', 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) throw new TurretError('proxy_auth_invalid', 'Proxy-Authorization must carry agent:token');
  const agent = decoded.slice(0, colon);
  const token = decoded.slice(colon + 1);
  const expected = expectedToken(policy, ring, values, agent);
  // Compare even for unknown agents (one digest either way) so timing does not reveal which names exist.
  const ok = timingSafeEqual(digest(token), expected === null ? NO_AGENT_DIGEST : keep(expectedDigests, expected, () => digest(expected)));
  if (!expected || !ok) throw new TurretError('proxy_auth_invalid', 'unknown agent or wrong agent credential');
  return agent;
}

/**
 * identifyAgent with the request-level checks around it: a repeated `Proxy-Authorization` is a
 * 400 (Node would keep the first and drop the rest, and a proxy in front might have read another
 * one), and failed credentials are throttled per client address (auth-throttle.ts).
 */
export function authenticate(rt: Runtime, req: Pick<IncomingMessage, 'headers' | 'rawHeaders'>, remoteAddress: string | undefined, policy: Policy, connection?: object): string {
  let count = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if ((req.rawHeaders[i] ?? '').toLowerCase() === 'proxy-authorization') count++;
  if (count > 1) throw new TurretError('bad_request', `Proxy-Authorization appears ${count} times; send exactly one credential`);
  if (count === 1) {
    const wait = rt.authThrottle.retryAfterS(remoteAddress);
    if (wait > 0) {
      rt.metrics?.proxyAuthFailures.inc({ result: 'throttled' });
      throw new TurretError(
        'proxy_auth_throttled',
        `too many failed proxy credentials from this address (${AUTH_FAIL_BURST}, then one per ${AUTH_FAIL_REFILL_MS / 1000} s); retry after ${wait}s`,
        { retryAfterS: wait },
      );
    }
  }
  const raw = req.headers['proxy-authorization'];
  if (connection && count === 1 && raw) {
    const agent = provenBefore(connection, raw, policy, rt.ring, (a) => expectedToken(policy, rt.ring, rt.values, a));
    if (agent !== null) return agent;
  }
  try {
    const agent = identifyAgent(req.headers, policy, rt.ring, rt.values, remoteAddress);
    if (connection && count === 1 && raw) noteProven(connection, raw, agent, policy, rt.ring, expectedToken(policy, rt.ring, rt.values, agent));
    return agent;
  } catch (e) {
    if (e instanceof TurretError && e.code === 'proxy_auth_invalid') {
      rt.authThrottle.fail(remoteAddress);
      rt.metrics?.proxyAuthFailures.inc({ result: 'invalid' });
    }
    throw e;
  }
}
