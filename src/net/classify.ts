/**
 * Address classification: one IP address in, one class out, with a stable reason and its RFC.
 * The class decides (only 'public' is allowed without an exception); the reason is what the agent,
 * the audit record and the docs see. IPv6 forms that carry an IPv4 address are judged by that IPv4.
 */
import ipaddr from 'ipaddr.js';
import { TurretError } from '../core/errors.js';
import { ADDRESS_CLASSES, lookupRow, type AddressClass, type Embedding, type Verdict } from './ranges.js';

export { ADDRESS_CLASSES, type AddressClass, type Embedding } from './ranges.js';

export interface Classification {
  /** Canonical form of the address judged (dotted quad, or compressed IPv6). */
  address: string;
  class: AddressClass;
  reason: string;
  rfc: string;
  /** The IPv4 address that was judged when `address` is an IPv6 form carrying one. */
  embedded?: string;
  /** How `embedded` was carried. */
  via?: Embedding;
}

export interface ClassifyOptions {
  /**
   * Addresses of this machine (interfaces, Turret's listen address), canonical or not. Canonicalised
   * once per Set object and again when its size changes (adding is seen; delete-then-add of the
   * same count is not, so replace the Set rather than swap entries).
   */
  selfAddresses?: ReadonlySet<string>;
}

/** True only for 'public'. Written as a switch so a new class cannot be allowed by accident. */
export function isAllowedClass(c: AddressClass): boolean {
  switch (c) {
    case 'public':
      return true;
    case 'loopback':
    case 'unspecified':
    case 'this_network':
    case 'private':
    case 'unique_local':
    case 'shared':
    case 'link_local':
    case 'multicast':
    case 'broadcast':
    case 'documentation':
    case 'benchmarking':
    case 'reserved':
    case 'metadata':
    case 'self':
      return false;
    default: {
      const never: never = c;
      return never;
    }
  }
}

export function isAddressClass(s: string): s is AddressClass {
  return (ADDRESS_CLASSES as readonly string[]).includes(s);
}

const DOTTED_V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Parse an address strictly: a dotted quad with no leading zeros (so octal never sneaks in), or
 * an IPv6 address without zone id whose embedded dotted part, if any, is equally strict.
 * Odd spellings are normaliseHost's job; here they are refused.
 */
export function parseStrictAddress(address: string): ipaddr.IPv4 | ipaddr.IPv6 {
  if (DOTTED_V4.test(address)) return ipaddr.IPv4.parse(address);
  const v6 = parseV6(address);
  if (v6) return v6;
  throw badAddress();
}

const HEXGROUP = /^[0-9a-fA-F]{1,4}$/;

/**
 * Our own IPv6 parser (RFC 4291 §2.2). ipaddr.js reads "::1.2.3.4" as "::ffff:1.2.3.4", which
 * would change the address we classify and dial, and accepts hex or octal in the dotted part.
 */
function parseV6(text: string): ipaddr.IPv6 | undefined {
  if (text.length > 45 || !/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  let head = text;
  const tailGroups: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (lastColon < 0) return undefined;
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    if (!DOTTED_V4.test(tail)) return undefined;
    const o = tail.split('.').map(Number);
    tailGroups.push(((o[0] ?? 0) << 8) | (o[1] ?? 0), ((o[2] ?? 0) << 8) | (o[3] ?? 0));
    // keep the colon so "::1.2.3.4" leaves "::" and "1::1.2.3.4" leaves "1::"
    head = text.slice(0, lastColon + 1);
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const parse = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!HEXGROUP.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = parse(halves[0] ?? '');
  const right = halves.length === 2 ? parse(halves[1] ?? '') : [];
  if (!left || !right) return undefined;
  const explicit = left.length + right.length + tailGroups.length;
  let groups: number[];
  if (halves.length === 2) {
    if (explicit > 7) return undefined; // "::" stands for at least one zero group
    groups = [...left, ...new Array<number>(8 - explicit).fill(0), ...right, ...tailGroups];
  } else {
    if (explicit !== 8) return undefined;
    groups = [...left, ...tailGroups];
  }
  return new ipaddr.IPv6(groups);
}

function badAddress(): TurretError {
  return new TurretError('bad_target', 'not a valid IP address');
}

/** Canonical text of an address: dotted quad, or ipaddr.js's compressed IPv6. */
export function canonicalAddress(address: string): string {
  return parseStrictAddress(address).toString();
}

const selfCache = new WeakMap<ReadonlySet<string>, { size: number; set: Set<string> }>();

/**
 * The caller's set, canonicalised once per set object and again whenever its size changes: the
 * runtime's set grows after start (listen addresses, interfaces found on reload), and a stale
 * copy would let a newly added address through. Entries that do not parse are ignored.
 */
function canonicalSelf(set: ReadonlySet<string> | undefined): ReadonlySet<string> | undefined {
  if (!set || set.size === 0) return undefined;
  let hit = selfCache.get(set);
  if (!hit || hit.size !== set.size) {
    const out = new Set<string>();
    for (const a of set) {
      try {
        out.add(canonicalAddress(a.replace(/%.*$/, '')));
      } catch {
        // not an address: nothing can match it
      }
    }
    hit = { size: set.size, set: out };
    selfCache.set(set, hit);
  }
  return hit.set;
}

const SELF: Verdict = { class: 'self', reason: "an address of the proxy's own host", rfc: 'Turret' };

function judge(addr: ipaddr.IPv4 | ipaddr.IPv6, self: ReadonlySet<string> | undefined): Classification {
  const address = addr.toString();
  const row = lookupRow(addr);
  if (row.embed && addr.kind() === 'ipv6') {
    const inner = extractEmbedded(addr as ipaddr.IPv6, row.embed.via);
    const c = judge(inner, self);
    return {
      address,
      class: c.class,
      reason: `${c.reason} inside ${row.embed.reason}`,
      rfc: c.rfc,
      embedded: c.address,
      via: row.embed.via,
    };
  }
  const verdict = row.verdict;
  if (!verdict) throw new Error(`address table row ${row.cidr} has no verdict`);
  // Metadata and loopback keep their own names; any other address of this host is 'self', even a
  // public one: dialling it reaches Turret's own listeners and the operator's local services.
  if (self?.has(address) && verdict.class !== 'metadata' && verdict.class !== 'loopback') {
    return { address, ...SELF };
  }
  return { address, class: verdict.class, reason: verdict.reason, rfc: verdict.rfc };
}

/** Classify one IP address. Throws TurretError('bad_target') when it is not a strict IP address. */
export function classify(address: string, opts: ClassifyOptions = {}): Classification {
  return judge(parseStrictAddress(address), canonicalSelf(opts.selfAddresses));
}

function v4(b: readonly number[], i: number, j: number, k: number, l: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([b[i] ?? 0, b[j] ?? 0, b[k] ?? 0, b[l] ?? 0]);
}

/**
 * The IPv4 address inside an IPv6 one. For the NAT64 local-use /48 the operator may pick any
 * RFC 6052 prefix length of /48 or longer, so every plausible position is read and the worst
 * (first non-public) one is reported: fail closed when the layout is unknown.
 */
export function extractEmbedded(addr: ipaddr.IPv6, via: Embedding): ipaddr.IPv4 {
  const b = addr.toByteArray();
  switch (via) {
    case 'mapped':
    case 'translated':
    case 'compat':
    case 'nat64':
      return v4(b, 12, 13, 14, 15);
    case '6to4':
      return v4(b, 2, 3, 4, 5);
    case 'teredo': {
      // RFC 4380 §4: the client's public IPv4 is stored inverted in the last 32 bits.
      const client = new ipaddr.IPv4(b.slice(12, 16).map((x) => (x ^ 0xff) & 0xff));
      const server = v4(b, 4, 5, 6, 7);
      if (lookupRow(client).verdict?.class === 'public' && lookupRow(server).verdict?.class !== 'public') return server;
      return client;
    }
    case 'nat64_local': {
      // RFC 6052 §2.2 layouts for /48, /56, /64 and /96 (byte 8 is the u-octet). A shorter layout
      // is plausible only when its suffix bytes are zero, as the RFC requires of translators.
      const zeroFrom = (i: number): boolean => b.slice(i).every((x) => x === 0);
      const shorter: ipaddr.IPv4[] = [];
      if (zeroFrom(11)) shorter.push(v4(b, 6, 7, 9, 10));
      if (zeroFrom(12)) shorter.push(v4(b, 7, 9, 10, 11));
      if (zeroFrom(13)) shorter.push(v4(b, 9, 10, 11, 12));
      const long = v4(b, 12, 13, 14, 15);
      // A /96 reading of 0.x.x.x next to a plausible shorter layout is just the zero suffix.
      const candidates = shorter.length > 0 && b[12] === 0 ? shorter : [...shorter, long];
      return candidates.find((c) => lookupRow(c).verdict?.class !== 'public') ?? candidates[0] ?? long;
    }
    default: {
      const never: never = via;
      return never;
    }
  }
}
