/**
 * Handle → secret substitution in request headers and the request target. This is the only
 * place (with body.ts, sigv4.ts and scrubbing) that calls Secret.reveal() toward the network.
 *
 * Every handle found anywhere is validated (resolve.ts) before anything is sent, and must sit
 * where a token goes: Authorization Bearer/token/Basic, a header the secret names, or — when the
 * secret opts in with `query: true` — a query parameter value. A handle anywhere else, or hidden
 * in an encoding (encoded.ts), refuses the whole request: a handle is never forwarded as-is.
 */
import { findEncodedHandles } from './encoded.js';
import { HANDLE_PREFIX, HANDLE_RE } from './handles.js';
import { refuse, resolveHandle, type InjectContext } from './resolve.js';
import type { Secret } from './secret.js';

export type { InjectContext } from './resolve.js';
export type HeaderPairs = Array<[string, string]>;

export interface Injection {
  secret: string;
  handle: string;
  value: Secret;
}

export type Used = Map<string, Injection>;

/** No handle (nearly every header and target): one empty list for all, never added to. */
const NO_HANDLES: readonly string[] = Object.freeze([]);

function findHandles(text: string): readonly string[] {
  // Every handle starts with this literal (HANDLE_RE): text without it holds none, and is not matched.
  if (!text.includes(HANDLE_PREFIX)) return NO_HANDLES;
  return text.match(HANDLE_RE) ?? NO_HANDLES;
}

/** A handle where none may go: the misuse code (wrong host, agent …) outranks the location problem. */
export function refuseLocation(ctx: InjectContext, handle: string, where: string): never {
  const r = resolveHandle(ctx, handle);
  return refuse(ctx, r.claims, r.def, 'handle_location_unsupported', `a handle for secret ${r.def.name} cannot be injected ${where}`);
}

/** Refuse when `text` hides a handle in base64 or percent encoding. */
export function refuseEncoded(ctx: InjectContext, text: string, where: string): void {
  for (const h of findEncodedHandles(text)) refuseLocation(ctx, h, `when encoded (${where})`);
}

/** refuseEncoded for header `lname`'s value; where it was is spelled out only for a find, not for every header. */
function refuseEncodedHeader(ctx: InjectContext, value: string, lname: string): void {
  for (const h of findEncodedHandles(value)) refuseLocation(ctx, h, `when encoded (header ${lname.slice(0, 40)})`);
}

function replaceHandles(ctx: InjectContext, text: string, used: Used, check?: (r: ReturnType<typeof resolveHandle>, h: string) => void, encode = (s: string) => s): string {
  return text.replace(HANDLE_RE, (h) => {
    const r = resolveHandle(ctx, h);
    check?.(r, h);
    used.set(h, { secret: r.effective.name, handle: h, value: r.value });
    return encode(r.value.reveal());
  });
}

function injectAuthorization(ctx: InjectContext, value: string, used: Used): string {
  const m = /^(\S+)[ \t]+(\S+)\s*$/.exec(value);
  if (!m) {
    const h = findHandles(value)[0];
    if (h) refuseLocation(ctx, h, 'in this Authorization header (use Bearer, token or Basic)');
  }
  const scheme = m?.[1] ?? '';
  const cred = m?.[2] ?? '';
  switch (scheme.toLowerCase()) {
    case 'bearer':
    case 'token':
      return `${scheme} ${replaceHandles(ctx, cred, used)}`;
    default:
      return refuseLocation(ctx, findHandles(value)[0] ?? '', `in an Authorization ${scheme.slice(0, 20)} credential`);
  }
}

function injectBasic(ctx: InjectContext, value: string, used: Used): string | null {
  const m = /^basic[ \t]+([A-Za-z0-9+/=]+)\s*$/i.exec(value);
  if (!m) return null;
  const decoded = Buffer.from(m[1] ?? '', 'base64').toString('utf8');
  refuseEncoded(ctx, decoded, 'inside a Basic credential');
  if (findHandles(decoded).length === 0) return null;
  const colon = decoded.indexOf(':');
  if (colon < 0) refuseLocation(ctx, findHandles(decoded)[0] ?? '', 'in a Basic credential without ":"');
  const user = replaceHandles(ctx, decoded.slice(0, colon), used);
  const pass = replaceHandles(ctx, decoded.slice(colon + 1), used);
  return `Basic ${Buffer.from(`${user}:${pass}`, 'utf8').toString('base64')}`;
}

/**
 * Replace handles in request headers (hop-by-hop already removed). Every header is checked; a
 * header without a handle keeps its own pair, and when none had one the list itself is returned
 * (no new list and no new pair per header on every request: the caller made the list for this
 * request and hands it over).
 */
export function injectHeaders(ctx: InjectContext, headers: HeaderPairs, used: Used): HeaderPairs {
  let out: HeaderPairs | null = null;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i] as [string, string];
    const value = injectHeader(ctx, h[0], h[1], used);
    if (value !== h[1] && out === null) out = headers.slice(0, i);
    if (out !== null) out.push(value === h[1] ? h : [h[0], value]);
  }
  return out ?? headers;
}

/** One header's value toward the upstream (`value` itself when it holds no handle). */
function injectHeader(ctx: InjectContext, name: string, value: string, used: Used): string {
  const lname = name.toLowerCase();
  // A header *name* is never a place for a credential; without this it went out as sent.
  for (const h of findHandles(name)) refuseLocation(ctx, h, 'in a header name');
  refuseEncoded(ctx, name, 'in a header name');
  if (lname === 'authorization') {
    const basic = injectBasic(ctx, value, used);
    if (basic !== null) return basic;
    refuseEncoded(ctx, value, 'Authorization header');
    if (findHandles(value).length === 0) return value;
    return injectAuthorization(ctx, value, used);
  }
  refuseEncodedHeader(ctx, value, lname);
  if (findHandles(value).length === 0) return value;
  return replaceHandles(ctx, value, used, (r) => {
    if (!r.def.headers.includes(lname)) {
      refuse(
        ctx,
        r.claims,
        r.def,
        'handle_location_unsupported',
        `secret ${r.def.name} is not injected into header ${lname.slice(0, 40)}; allowed: Authorization${r.def.headers.length ? `, ${r.def.headers.join(', ')}` : ''}`,
      );
    }
  });
}

/** RFC 3986 query-value encoding (everything but unreserved). */
function encodeQueryValue(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Replace handles in the request target. The path never carries one; a query parameter value
 * may, when the handle's secret has `query: true`. Returns the target to send upstream.
 */
export function injectTarget(ctx: InjectContext, target: string, used: Used): string {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? null : target.slice(q + 1);
  refuseEncoded(ctx, target, 'in the URL');
  for (const h of findHandles(path)) refuseLocation(ctx, h, 'in the URL path');
  if (query === null || findHandles(query).length === 0) return target;
  const parts = query.split('&').map((kv) => {
    const eq = kv.indexOf('=');
    const k = eq < 0 ? kv : kv.slice(0, eq);
    for (const h of findHandles(k)) refuseLocation(ctx, h, 'in a query parameter name');
    if (eq < 0) return kv;
    const v = replaceHandles(
      ctx,
      kv.slice(eq + 1),
      used,
      (r) => {
        if (!r.def.query)
          refuse(ctx, r.claims, r.def, 'handle_location_unsupported', `secret ${r.def.name} is not injected into query parameters (set query: true on the secret to allow it)`);
      },
      encodeQueryValue,
    );
    return `${k}=${v}`;
  });
  return `${path}?${parts.join('&')}`;
}
