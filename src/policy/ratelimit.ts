/**
 * Token buckets for per-agent limits (`limits:`) and per-rule limits (`rate_limit:` on a rule).
 * Every bucket is keyed by the agent, so one agent exhausting a limit never slows another.
 *
 * The limiter outlives reloads (it lives on the Runtime, not the Policy): a bucket is kept while
 * its key and parameters stay the same, so reloading rules is not a way to reset a limit. Buckets
 * untouched for longer than a full refill are dropped, which bounds memory.
 *
 * Only allowed requests take tokens: a denied request costs the agent nothing. All buckets of a
 * request are checked before any is charged, so a refusal by one does not drain another.
 */
import type { Policy, RateLimitSpec, Rule } from './types.js';

interface Bucket {
  tokens: number;
  at: number;
  spec: RateLimitSpec;
}

export interface LimitCheck {
  key: string;
  spec: RateLimitSpec;
  /** What the limit is, for the refusal reason: "agent limit limits[0] (rules/a.yaml:3)". */
  label: string;
}

export type LimitResult = { ok: true } | { ok: false; retryAfterS: number; label: string; spec: RateLimitSpec };

const MAX_BUCKETS = 100_000;

function sameSpec(a: RateLimitSpec, b: RateLimitSpec): boolean {
  return a.requests === b.requests && a.perMs === b.perMs && a.burst === b.burst;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  private bucket(key: string, spec: RateLimitSpec, now: number): Bucket {
    let b = this.buckets.get(key);
    if (!b || !sameSpec(b.spec, spec)) {
      b = { tokens: spec.burst, at: now, spec };
      if (this.buckets.size >= MAX_BUCKETS) this.sweep(now);
      this.buckets.set(key, b);
    }
    const rate = spec.requests / spec.perMs;
    b.tokens = Math.min(spec.burst, b.tokens + Math.max(0, now - b.at) * rate);
    b.at = now;
    return b;
  }

  /** Take one token from every bucket, or none when any is empty. */
  take(checks: readonly LimitCheck[], now: number = Date.now()): LimitResult {
    const bs = checks.map((c) => ({ c, b: this.bucket(c.key, c.spec, now) }));
    for (const { c, b } of bs) {
      if (b.tokens < 1) {
        const rate = c.spec.requests / c.spec.perMs;
        return { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - b.tokens) / rate / 1000)), label: c.label, spec: c.spec };
      }
    }
    for (const { b } of bs) b.tokens -= 1;
    return { ok: true };
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets) {
      if (now - b.at > b.spec.perMs * Math.max(1, b.spec.burst / b.spec.requests)) this.buckets.delete(k);
    }
    // Still full: drop the oldest half rather than grow without bound (fails toward allowing a burst).
    if (this.buckets.size >= MAX_BUCKETS) {
      const keys = [...this.buckets.keys()].slice(0, MAX_BUCKETS / 2);
      for (const k of keys) this.buckets.delete(k);
    }
  }
}

/** The buckets an allowed request of `agent`, decided by `rule`, must take a token from. */
export function limitChecks(policy: Policy, agent: string, rule: Rule | null): LimitCheck[] {
  const out: LimitCheck[] = [];
  for (const l of policy.limits) {
    if (l.agents === 'any' || l.agents.has(agent)) out.push({ key: `agent\0${l.id}\0${agent}`, spec: l.spec, label: `the rate limit for agent ${agent} (${l.id})` });
  }
  // Keyed by rule name, not file:line, so editing lines above a rule does not reset its bucket.
  if (rule?.rateLimit) out.push({ key: `rule\0${rule.name}\0${agent}`, spec: rule.rateLimit, label: `the rate limit of rule ${rule.name} (${rule.id})` });
  return out;
}
