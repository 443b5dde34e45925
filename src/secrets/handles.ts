/**
 * Handles: opaque stand-ins for secrets. A handle is `trt_` + base64url(iv ‖ AES-256-GCM(payload) ‖ tag)
 * where the payload binds agent, secret name, expiry and a 128-bit random id. Sealing makes a
 * handle self-contained (any replica holding the key file can open it, nothing to share) and
 * opaque (an agent learns nothing by decoding it, and cannot forge or alter one: the GCM tag
 * fails). Revocation is by id, in a list every replica reads (revocations.ts).
 *
 * Rejected: a random token plus a shared table (needs shared state between replicas); a signed
 * but readable token (leaks agent and secret names to whoever holds it).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { KeyRing } from './keys.js';

import { HANDLE_PREFIX, HANDLE_RE } from '../core/handle-shape.js';

export { HANDLE_PREFIX, HANDLE_RE };

export interface HandleClaims {
  /** 128-bit random id (hex): what revocation lists name. */
  id: string;
  agent: string;
  secret: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
  /** Issued at, seconds since the epoch. */
  iat: number;
}

const VERSION = 1;

export function issueHandle(ring: KeyRing, o: { agent: string; secret: string; ttlSeconds: number; now?: number }): { handle: string; claims: HandleClaims } {
  const now = Math.floor((o.now ?? Date.now()) / 1000);
  const claims: HandleClaims = { id: randomBytes(16).toString('hex'), agent: o.agent, secret: o.secret, iat: now, exp: now + o.ttlSeconds };
  const payload = Buffer.from(JSON.stringify([VERSION, claims.id, claims.agent, claims.secret, claims.iat, claims.exp]), 'utf8');
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', ring.handleKey, iv);
  c.setAAD(Buffer.from(HANDLE_PREFIX));
  const ct = Buffer.concat([c.update(payload), c.final()]);
  const handle = HANDLE_PREFIX + Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64url');
  return { handle, claims };
}

/** Opened handles per key ring, most recently used last. */
const opened = new WeakMap<KeyRing, Map<string, HandleClaims>>();
const MAX_OPENED = 4096;

/**
 * Open a handle; null when it is malformed, forged or sealed with another key. Expiry is not
 * checked here (nor revocation): callers check both on every use. A handle that opened is kept
 * (bounded, per key ring): the same string under the same key always opens to the same claims,
 * and an agent sends the same handle with every request, so the AES-GCM open and JSON parse are
 * paid once. What fails to open is never kept, so garbage cannot evict real handles.
 */
export function openHandle(ring: KeyRing, handle: string): HandleClaims | null {
  let cache = opened.get(ring);
  if (!cache) opened.set(ring, (cache = new Map()));
  const hit = cache.get(handle);
  if (hit) {
    cache.delete(handle);
    cache.set(handle, hit);
    return hit;
  }
  const claims = openUncached(ring, handle);
  if (claims) {
    if (cache.size >= MAX_OPENED) cache.delete(cache.keys().next().value as string);
    cache.set(handle, Object.freeze(claims));
  }
  return claims;
}

function openUncached(ring: KeyRing, handle: string): HandleClaims | null {
  if (!handle.startsWith(HANDLE_PREFIX) || handle.length > 2048) return null;
  const raw = Buffer.from(handle.slice(HANDLE_PREFIX.length), 'base64url');
  // base64url decoding is lenient; insist on the canonical round trip so one handle has one spelling.
  if (raw.toString('base64url') !== handle.slice(HANDLE_PREFIX.length) || raw.length < 12 + 16 + 8) return null;
  try {
    const d = createDecipheriv('aes-256-gcm', ring.handleKey, raw.subarray(0, 12));
    d.setAAD(Buffer.from(HANDLE_PREFIX));
    d.setAuthTag(raw.subarray(raw.length - 16));
    const pt = Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]);
    const arr: unknown = JSON.parse(pt.toString('utf8'));
    if (!Array.isArray(arr) || arr[0] !== VERSION || arr.length !== 6) return null;
    const [, id, agent, secret, iat, exp] = arr as [number, string, string, string, number, number];
    if (typeof id !== 'string' || typeof agent !== 'string' || typeof secret !== 'string' || typeof exp !== 'number' || typeof iat !== 'number') return null;
    return { id, agent, secret, iat, exp };
  } catch {
    return null;
  }
}

/** Parse "8h", "30m", "45s", "2d" or plain seconds. */
export function parseTtl(s: string): number | null {
  const m = /^(\d{1,9})([smhd]?)$/.exec(s.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const mult = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  const v = n * mult;
  return v > 0 && v <= 366 * 86400 ? v : null;
}
