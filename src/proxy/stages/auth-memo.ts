/**
 * Plain HTTP through the proxy port authenticates every request, and a keep-alive client sends
 * the same Proxy-Authorization line on each: base64 decoding it and hashing its token for a
 * constant-time comparison was ~5% of a plain HTTP request's CPU (docs/benchmarks.md "Hot path",
 * fourth pass). A connection remembers the one header value it last proved and for which agent;
 * the next request on that connection with the byte-identical value is that agent again, so long
 * as the agent's expected credential is still the one it was proved against.
 *
 * What still happens per request: the duplicate-header check and the throttle (identify.ts), and
 * the expected credential is looked up again (a rotated token file, a reloaded policy without
 * the agent, a new key ring: any of them ends the memo, and the full check runs). The memo is per
 * connection object, never shared: a header value is only ever compared with what this same
 * client already presented and passed, so the comparison leaks nothing the client does not know.
 */
import type { Policy } from '../../policy/types.js';
import type { KeyRing } from '../../secrets/keys.js';

interface Proven {
  raw: string;
  agent: string;
  policy: Policy;
  ring: KeyRing;
  expected: string;
}

const proven = new WeakMap<object, Proven>();

/** The agent `raw` proved on `connection` before, when nothing it was proved against has changed; else null. */
export function provenBefore(connection: object, raw: string, policy: Policy, ring: KeyRing, expected: (agent: string) => string | null): string | null {
  const p = proven.get(connection);
  if (!p || p.raw !== raw || p.policy !== policy || p.ring !== ring) return null;
  if (expected(p.agent) !== p.expected) {
    proven.delete(connection);
    return null;
  }
  return p.agent;
}

/** `raw` just proved `agent` on `connection` (identifyAgent accepted it). */
export function noteProven(connection: object, raw: string, agent: string, policy: Policy, ring: KeyRing, expected: string | null): void {
  if (expected !== null) proven.set(connection, { raw, agent, policy, ring, expected });
}
