/**
 * The state replicas must agree on, behind one interface:
 *
 *   - rate-limit buckets (per agent and per rule, policy/ratelimit.ts semantics),
 *   - revoked handle ids (checked on every handle use),
 *   - issued-handle records (`turret handle list`, `revoke --agent`).
 *
 * Two implementations: LocalState (this process plus the files beside the key file: today's
 * behaviour, used when `settings.shared_state` is absent) and RedisState (one Redis that every
 * replica and worker talks to). Secret values never pass through here.
 */
import type { LimitCheck, LimitResult } from '../policy/ratelimit.js';
import type { HandleClaims } from '../secrets/handles.js';
import type { IssuedRecord } from '../secrets/issued.js';

export interface StateHealth {
  kind: 'local' | 'redis';
  /** Redis reachable and the revocation mirror re-read since the last (re)connect. Always true for local. */
  connected: boolean;
  /** When not connected: production refuses traffic, development serves from local state. */
  mode: 'shared' | 'refusing' | 'local-fallback';
  /** The last connection problem (no credentials in it), or null. */
  lastError: string | null;
}

export interface SharedState {
  readonly kind: 'local' | 'redis';
  /** Takes one token from every bucket, or none when any is empty (all or nothing, like RateLimiter). */
  take(checks: readonly LimitCheck[]): Promise<LimitResult>;
  /** Synchronous: answered from a local mirror that pub/sub keeps current (resolve.ts calls it per handle). */
  isRevoked(id: string): boolean;
  /** Durable, and seen by every replica. */
  revoke(id: string, exp: number): Promise<void>;
  recordIssued(claims: HandleClaims, by: string): Promise<void>;
  listIssued(): Promise<IssuedRecord[]>;
  /** Why traffic must be refused now (production with Redis unreachable), or null. */
  refusal(): string | null;
  health(): StateHealth;
  close(): Promise<void>;
}
