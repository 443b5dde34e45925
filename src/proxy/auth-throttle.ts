/**
 * Failed proxy authentication is throttled per client address, so a credential cannot be guessed
 * at line rate (1,000 guesses took 1.1 s before). A token bucket per address: every failed
 * credential (`proxy_auth_invalid`) takes a token; with the bucket empty, every request or CONNECT
 * from that address that presents a credential is refused `429 proxy_auth_throttled` with
 * `Retry-After`, *before* the credential is checked — otherwise the answer would still tell a
 * right guess from a wrong one at full speed.
 *
 *   burst 10 failures, then 1 more every 6 s (10 per minute): 1,000 guesses take ~99 minutes.
 *
 * IPv4-mapped IPv6 clients count as their IPv4 address; IPv6 clients are keyed by their /64 (one
 * host usually owns a whole /64, so rotating the interface id must not reset the count). Requests
 * without a credential (the 407 challenge, source-address agents) are never throttled. An agent
 * sharing an address with one that guesses is throttled too (docs/security.md).
 */
import ipaddr from 'ipaddr.js';

export const AUTH_FAIL_BURST = 10;
export const AUTH_FAIL_REFILL_MS = 6_000;
const MAX_ADDRESSES = 100_000;

interface Bucket {
  tokens: number;
  at: number;
}

export function throttleKey(address: string | undefined): string {
  if (!address) return '?';
  try {
    let a = ipaddr.parse(address);
    if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
    if (a.kind() === 'ipv4') return a.toString();
    const parts = (a as ipaddr.IPv6).parts.slice(0, 4);
    return `${parts.map((p) => p.toString(16)).join(':')}::/64`;
  } catch {
    return address;
  }
}

export class AuthThrottle {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly burst = AUTH_FAIL_BURST,
    private readonly refillMs = AUTH_FAIL_REFILL_MS,
  ) {}

  private refill(key: string, now: number): Bucket | undefined {
    const b = this.buckets.get(key);
    if (!b) return undefined;
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) / this.refillMs);
    b.at = now;
    if (b.tokens >= this.burst) {
      this.buckets.delete(key); // full again: nothing to remember
      return undefined;
    }
    return b;
  }

  /** Seconds to wait before this address may try a credential again; 0 = may try now. */
  retryAfterS(address: string | undefined, now: number = Date.now()): number {
    // No address has failed lately (the usual case): nothing to parse or look up.
    if (this.buckets.size === 0) return 0;
    const b = this.refill(throttleKey(address), now);
    if (!b || b.tokens >= 1) return 0;
    return Math.max(1, Math.ceil(((1 - b.tokens) * this.refillMs) / 1000));
  }

  /** Count one failed credential from this address. */
  fail(address: string | undefined, now: number = Date.now()): void {
    const key = throttleKey(address);
    let b = this.refill(key, now);
    if (!b) {
      if (this.buckets.size >= MAX_ADDRESSES) this.sweep(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.max(0, b.tokens - 1);
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    for (const k of [...this.buckets.keys()]) this.refill(k, now);
    // Still full (a flood of addresses): forget the oldest half rather than grow without bound.
    if (this.buckets.size >= MAX_ADDRESSES) for (const k of [...this.buckets.keys()].slice(0, MAX_ADDRESSES / 2)) this.buckets.delete(k);
  }
}
