/**
 * Local state: the in-memory token buckets of this process and the revocation and issuance
 * files beside the key file. This is exactly what Turret did before shared state existed, and
 * what RedisState falls back to in development while Redis is unreachable.
 */
import { RateLimiter, type LimitCheck, type LimitResult } from '../policy/ratelimit.js';
import type { HandleClaims } from '../secrets/handles.js';
import { readIssued, recordIssued, type IssuedRecord } from '../secrets/issued.js';
import { RevocationList } from '../secrets/revocations.js';
import type { SharedState, StateHealth } from './types.js';

export class LocalState implements SharedState {
  readonly kind = 'local';
  readonly revocations: RevocationList;

  constructor(
    readonly dir: string,
    readonly limiter: RateLimiter = new RateLimiter(),
  ) {
    this.revocations = new RevocationList(dir);
  }

  take(checks: readonly LimitCheck[]): Promise<LimitResult> {
    return Promise.resolve(this.limiter.take(checks));
  }

  /** Synchronous variant for callers that have no await (the fallback path of RedisState). */
  takeNow(checks: readonly LimitCheck[]): LimitResult {
    return this.limiter.take(checks);
  }

  isRevoked(id: string): boolean {
    return this.revocations.has(id);
  }

  revoke(id: string, exp: number): Promise<void> {
    return this.revocations.revoke(id, exp);
  }

  recordIssued(claims: HandleClaims, by: string): Promise<void> {
    return recordIssued(this.dir, claims, by);
  }

  listIssued(): Promise<IssuedRecord[]> {
    return Promise.resolve(readIssued(this.dir));
  }

  refusal(): string | null {
    return null;
  }

  health(): StateHealth {
    return { kind: 'local', connected: true, mode: 'shared', lastError: null };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
