/**
 * One handle, one request: is this handle usable here, and for which secret value? Every check
 * of promise 2 (PRODUCT.md) lives here, in the order a misuse is most informative: forged →
 * other agent → expired → revoked → plain HTTP → unbound host → method/path scope. A secret's
 * `variants` pick a narrower secret by method and path (a write token for approved writes);
 * the variant's own hosts and scope apply too.
 *
 * A misuse (a valid handle used where it must not go) also triggers the secret's `on_misuse`
 * policy through ctx.revoke, so a leaked handle dies on its first misuse.
 */
import { TurretError, type ErrorCode } from '../core/errors.js';
import { hostMatches, normalisePath } from '../policy/match.js';
import type { Policy, RequestFacts, SecretDef } from '../policy/types.js';
import { openHandle, type HandleClaims } from './handles.js';
import type { KeyRing } from './keys.js';
import type { Secret } from './secret.js';

/** The request (who, method, where) plus what resolving a handle needs. */
export interface InjectContext extends Pick<RequestFacts, 'agent' | 'method' | 'scheme' | 'host' | 'port' | 'path'> {
  ring: KeyRing;
  policy: Policy;
  isRevoked: (id: string) => boolean;
  secretValue: (def: SecretDef) => Secret | null;
  /** Called when a misused handle's secret says `on_misuse: revoke`. */
  revoke?: (claims: HandleClaims) => void;
  now?: number;
}

export interface Resolved {
  claims: HandleClaims;
  /** The secret the handle was issued for. */
  def: SecretDef;
  /** The secret injected: `def` or the variant it selected. */
  effective: SecretDef;
  value: Secret;
}

const MISUSE: ReadonlySet<ErrorCode> = new Set(['handle_wrong_agent', 'handle_plain_http', 'handle_host_not_bound', 'handle_scope_denied', 'handle_location_unsupported']);

/** Refuse a request because of where a valid handle was used; applies on_misuse. */
export function refuse(ctx: InjectContext, claims: HandleClaims, def: SecretDef | undefined, code: ErrorCode, reason: string): never {
  if (MISUSE.has(code) && def?.onMisuse === 'revoke' && ctx.revoke) {
    ctx.revoke(claims);
    reason += '; the handle has been revoked';
  }
  throw new TurretError(code, reason);
}

function inScope(def: SecretDef, method: string, path: string): boolean {
  if (def.methods !== 'any' && !def.methods.has(method)) return false;
  return def.paths === null || def.paths.some((p) => p.test(path));
}

function bound(ctx: InjectContext, def: SecretDef): boolean {
  return def.hosts.some((h) => hostMatches(h, ctx.host, ctx.port, ctx.scheme));
}

/** Validate one handle for this request; returns the secret to put in its place. */
export function resolveHandle(ctx: InjectContext, handle: string): Resolved {
  const claims = openHandle(ctx.ring, handle);
  if (!claims) throw new TurretError('handle_invalid', 'a credential handle in the request is not one Turret issued');
  const def = ctx.policy.secrets.get(claims.secret);
  if (claims.agent !== ctx.agent) refuse(ctx, claims, def, 'handle_wrong_agent', `a handle for secret ${claims.secret} was issued to another agent`);
  const now = Math.floor((ctx.now ?? Date.now()) / 1000);
  if (claims.exp <= now) throw new TurretError('handle_expired', `the handle for secret ${claims.secret} expired`);
  if (ctx.isRevoked(claims.id)) throw new TurretError('handle_revoked', `the handle for secret ${claims.secret} was revoked`);
  if (!def) throw new TurretError('handle_invalid', `secret ${claims.secret} is no longer defined in the rules`);
  if (ctx.scheme !== 'https') refuse(ctx, claims, def, 'handle_plain_http', `the handle for secret ${def.name} may only travel over HTTPS`);
  if (!bound(ctx, def)) {
    refuse(ctx, claims, def, 'handle_host_not_bound', `secret ${def.name} is not bound to ${ctx.host}:${ctx.port}; it may go only to ${def.hosts.map((h) => h.source).join(', ')}`);
  }
  const path = normalisePath(ctx.path);
  let effective = def;
  const variant = def.variants.find((v) => inScope({ ...def, methods: v.methods, paths: v.paths }, ctx.method, path));
  if (variant) {
    const vdef = ctx.policy.secrets.get(variant.secret);
    if (!vdef) throw new TurretError('secret_unavailable', `secret ${def.name} selects secret ${variant.secret}, which is not defined`);
    if (!bound(ctx, vdef)) refuse(ctx, claims, def, 'handle_host_not_bound', `secret ${vdef.name} (selected by ${def.name}) is not bound to ${ctx.host}:${ctx.port}`);
    effective = vdef;
  }
  if (!inScope(effective, ctx.method, path)) {
    refuse(ctx, claims, def, 'handle_scope_denied', `secret ${effective.name} may not be used for ${ctx.method.slice(0, 10)} ${path.slice(0, 80)}`);
  }
  const value = ctx.secretValue(effective);
  if (!value) throw new TurretError('secret_unavailable', `secret ${effective.name} has no value loaded (${effective.source.kind} source)`);
  return { claims, def, effective, value };
}
