/**
 * Source-address identity: an agent on a container network may be known by the address its
 * connections come from instead of a proxy credential (`agents: - name: builder  sources:
 * [10.88.0.0/24]`). This file parses the ranges (config calls it at load, so a bad range is a
 * `file:line:col` error) and answers "which agent owns this client address?" (proxy/identify.ts).
 *
 * Rules that keep the lookup unambiguous and hard to misuse:
 * - a range never overlaps another range, of the same agent or another: one address, one agent,
 *   whatever the order of files (a first-match table would make file order a security setting);
 * - host bits must be zero (10.88.0.1/24 is probably a typo for the /24 or the /32);
 * - /0 is refused: "every address is this agent" turns identity off;
 * - IPv6 ranges that hide IPv4 (::ffff:0:0/96 and friends) are refused: a dual-stack listener
 *   reports IPv4 clients as ::ffff:a.b.c.d, which is matched by its IPv4, so write the IPv4 range.
 *
 * The trust this buys is only as good as the network: see docs/operations.md, "Container networks".
 */
import ipaddr from 'ipaddr.js';
import { parseStrictAddress } from './classify.js';

export interface SourceRange {
  /** Canonical text, e.g. "10.88.0.0/24", "fd00:88::/64". */
  cidr: string;
  net: ipaddr.IPv4 | ipaddr.IPv6;
  bits: number;
}

/** Parse one configured source range; a bare address means /32 or /128. Throws Error(reason). */
export function parseSourceRange(text: string): SourceRange {
  if (typeof text !== 'string' || text.trim() === '' || text.includes('%')) throw new Error(`"${String(text).slice(0, 60)}" is not an address range (write e.g. 10.88.0.0/24)`);
  const t = text.trim();
  const withBits = t.includes('/') ? t : `${t}/${t.includes(':') ? 128 : 32}`;
  // The strict parser (net/classify.ts): no classful shorthands ("10.1/16"), no octal or hex
  // parts, and "::1.2.3.4" stays what it says (ipaddr.js would read it as ::ffff:1.2.3.4).
  const parts = withBits.split('/');
  const [addrText = '', bitsText = ''] = parts;
  if (parts.length !== 2 || !/^\d{1,3}$/.test(bitsText)) throw new Error(`"${t.slice(0, 60)}" has no valid prefix length`);
  let net: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    net = parseStrictAddress(addrText);
  } catch {
    throw new Error(`"${t.slice(0, 60)}" is not an address range (write e.g. 10.88.0.0/24 or fd00:88::/64)`);
  }
  const bits = Number(bitsText);
  if (bits > (net.kind() === 'ipv4' ? 32 : 128)) throw new Error(`"${t.slice(0, 60)}" has a prefix longer than the address`);
  if (bits === 0) throw new Error(`"${t.slice(0, 60)}" matches every address; name the container network's range`);
  const base = net.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(`${net.toString()}/${bits}`) : ipaddr.IPv6.networkAddressFromCIDR(`${net.toString()}/${bits}`);
  if (base.toString() !== net.toString()) throw new Error(`"${t.slice(0, 60)}" has host bits set; did you mean ${base.toString()}/${bits}?`);
  if (net.kind() === 'ipv6') {
    const v6 = net as ipaddr.IPv6;
    // Any range that contains or sits inside ::ffff:0:0/96 would shadow or duplicate an IPv4 range.
    const mapped = ipaddr.IPv6.parse('::ffff:0:0');
    if (v6.match(mapped, Math.min(bits, 96)) || (bits <= 96 && mapped.match(v6, bits))) {
      throw new Error(`"${t.slice(0, 60)}" covers IPv4-mapped addresses; write the IPv4 range instead (mapped clients are matched by their IPv4)`);
    }
  }
  return { cidr: `${net.toString()}/${bits}`, net, bits };
}

export function rangesOverlap(a: SourceRange, b: SourceRange): boolean {
  if (a.net.kind() !== b.net.kind()) return false;
  const shorter = Math.min(a.bits, b.bits);
  return (a.net as ipaddr.IPv4).match(b.net as ipaddr.IPv4, shorter);
}

/**
 * The client address as the agent's socket reports it, in the form ranges are matched in:
 * zone id removed, IPv4-mapped IPv6 turned into its IPv4. null when it does not parse.
 */
export function clientAddress(remote: string | undefined): ipaddr.IPv4 | ipaddr.IPv6 | null {
  if (!remote) return null;
  const bare = remote.replace(/^\[|\]$/g, '').split('%')[0] ?? '';
  let a: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    a = parseStrictAddress(bare);
  } catch {
    return null;
  }
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address();
  return a;
}

export interface SourceOwner {
  agent: string;
  range: SourceRange;
}

/** Address → agent for one policy's agents. Ranges never overlap (load check), so order is irrelevant. */
export class SourceTable {
  private readonly v4: SourceOwner[] = [];
  private readonly v6: SourceOwner[] = [];

  constructor(agents: Iterable<{ name: string; sources: readonly SourceRange[] }>) {
    for (const a of agents) {
      for (const r of a.sources) (r.net.kind() === 'ipv4' ? this.v4 : this.v6).push({ agent: a.name, range: r });
    }
  }

  get size(): number {
    return this.v4.length + this.v6.length;
  }

  /** The agent whose range holds `remote` (a socket's remoteAddress), or null. */
  lookup(remote: string | undefined): SourceOwner | null {
    const a = clientAddress(remote);
    if (!a) return null;
    const list = a.kind() === 'ipv4' ? this.v4 : this.v6;
    for (const o of list) if ((a as ipaddr.IPv4).match(o.range.net as ipaddr.IPv4, o.range.bits)) return o;
    return null;
  }
}

const tables = new WeakMap<object, SourceTable>();

/** The table of an agents map, built once per loaded policy (the map object is the policy's). */
export function sourceTableFor(agents: ReadonlyMap<string, { name: string; sources: readonly SourceRange[] }>): SourceTable {
  let t = tables.get(agents);
  if (!t) {
    t = new SourceTable(agents.values());
    tables.set(agents, t);
  }
  return t;
}
