/**
 * Handle → secret substitution in request headers. This is the only place (with scrubbing)
 * that calls Secret.reveal() toward the network.
 *
 * Every handle found anywhere in the request is validated before anything is sent: it must
 * open with our key, belong to the requesting agent, be unexpired and unrevoked, name a
 * defined secret whose value is loaded, travel over HTTPS, go to a host the secret is bound to,
 * and sit where a token goes (Authorization Bearer/token/Basic, or a header the secret names).
 * Any failure refuses the whole request: a handle is never forwarded as-is.
 */
import { TurretError } from '../core/errors.js';
import { hostMatches } from '../policy/match.js';
import type { Policy, Scheme, SecretDef } from '../policy/types.js';
import { HANDLE_RE, openHandle, type HandleClaims } from './handles.js';
import type { KeyRing } from './keys.js';
import type { Secret } from './secret.js';

export type HeaderPairs = Array<[string, string]>;

export interface InjectContext {
  ring: KeyRing;
  policy: Policy;
  isRevoked: (id: string) => boolean;
  secretValue: (def: SecretDef) => Secret | null;
  agent: string;
  scheme: Scheme;
  host: string;
  port: number;
  now?: number;
}

export interface Injection {
  secret: string;
  handle: string;
  value: Secret;
}

/** Validate one handle for this request; returns the secret to put in its place. */
export function resolveHandle(ctx: InjectContext, handle: string): { claims: HandleClaims; def: SecretDef; value: Secret } {
  const claims = openHandle(ctx.ring, handle);
  if (!claims) throw new TurretError('handle_invalid', 'a credential handle in the request is not one Turret issued');
  if (claims.agent !== ctx.agent) throw new TurretError('handle_wrong_agent', `a handle for secret ${claims.secret} was issued to another agent`);
  const now = Math.floor((ctx.now ?? Date.now()) / 1000);
  if (claims.exp <= now) throw new TurretError('handle_expired', `the handle for secret ${claims.secret} expired`);
  if (ctx.isRevoked(claims.id)) throw new TurretError('handle_revoked', `the handle for secret ${claims.secret} was revoked`);
  const def = ctx.policy.secrets.get(claims.secret);
  if (!def) throw new TurretError('handle_invalid', `secret ${claims.secret} is no longer defined in the rules`);
  if (ctx.scheme !== 'https') throw new TurretError('handle_plain_http', `the handle for secret ${def.name} may only travel over HTTPS`);
  if (!def.hosts.some((h) => hostMatches(h, ctx.host, ctx.port, ctx.scheme))) {
    throw new TurretError('handle_host_not_bound', `secret ${def.name} is not bound to ${ctx.host}:${ctx.port}; it may go only to ${def.hosts.map((h) => h.source).join(', ')}`);
  }
  const value = ctx.secretValue(def);
  if (!value) throw new TurretError('secret_unavailable', `secret ${def.name} has no value loaded (${def.source.kind} source)`);
  return { claims, def, value };
}

function findHandles(text: string): string[] {
  return text.match(HANDLE_RE) ?? [];
}

function replaceHandles(ctx: InjectContext, text: string, used: Map<string, Injection>): string {
  return text.replace(HANDLE_RE, (h) => {
    const r = resolveHandle(ctx, h);
    used.set(h, { secret: r.def.name, handle: h, value: r.value });
    return r.value.reveal();
  });
}

function injectAuthorization(ctx: InjectContext, value: string, used: Map<string, Injection>): string {
  const m = /^(\S+)[ \t]+(\S+)\s*$/.exec(value);
  if (!m) throw new TurretError('handle_location_unsupported', 'a handle in Authorization must follow a scheme (Bearer, token or Basic)');
  const scheme = m[1] ?? '';
  const cred = m[2] ?? '';
  switch (scheme.toLowerCase()) {
    case 'bearer':
    case 'token':
      return `${scheme} ${replaceHandles(ctx, cred, used)}`;
    default:
      throw new TurretError('handle_location_unsupported', `a handle in an Authorization ${scheme.slice(0, 20)} credential cannot be injected`);
  }
}

function injectBasic(ctx: InjectContext, value: string, used: Map<string, Injection>): string | null {
  const m = /^basic[ \t]+([A-Za-z0-9+/=]+)\s*$/i.exec(value);
  if (!m) return null;
  const decoded = Buffer.from(m[1] ?? '', 'base64').toString('utf8');
  if (findHandles(decoded).length === 0) return null;
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new TurretError('handle_location_unsupported', 'a Basic credential without ":" cannot carry a handle');
  const user = replaceHandles(ctx, decoded.slice(0, colon), used);
  const pass = replaceHandles(ctx, decoded.slice(colon + 1), used);
  return `Basic ${Buffer.from(`${user}:${pass}`, 'utf8').toString('base64')}`;
}

/**
 * Replace handles in request headers. `target` is the request path and query: a handle there
 * is refused (query injection is opt-in per secret and not enabled by this version).
 */
export function injectHeaders(ctx: InjectContext, headers: HeaderPairs, target: string): { headers: HeaderPairs; injections: Injection[] } {
  const used = new Map<string, Injection>();
  for (const h of findHandles(safeDecode(target))) {
    resolveHandle(ctx, h); // a misuse code (wrong host, agent…) outranks the location problem
    throw new TurretError('handle_location_unsupported', 'a credential handle in the URL cannot be injected; send it in the Authorization header');
  }
  const out: HeaderPairs = headers.map(([name, value]) => {
    const lname = name.toLowerCase();
    if (lname === 'authorization') {
      const basic = injectBasic(ctx, value, used);
      if (basic !== null) return [name, basic];
      if (findHandles(value).length === 0) return [name, value];
      return [name, injectAuthorization(ctx, value, used)];
    }
    const found = findHandles(value);
    if (found.length === 0) return [name, value];
    for (const h of found) {
      const r = resolveHandle(ctx, h);
      if (!r.def.headers.includes(lname)) {
        throw new TurretError('handle_location_unsupported', `secret ${r.def.name} is not injected into header ${lname.slice(0, 40)}; allowed: Authorization${r.def.headers.length ? `, ${r.def.headers.join(', ')}` : ''}`);
      }
    }
    return [name, replaceHandles(ctx, value, used)];
  });
  return { headers: out, injections: [...used.values()] };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
