/**
 * The address table: every special-purpose range Turret knows, as data. Sources are the IANA IPv4
 * and IPv6 Special-Purpose Address Registries (RFC 6890 and their later entries), the multicast
 * registries, and the cloud providers' documented metadata endpoints. Lookup is longest-prefix
 * match, so a /32 metadata row wins over the /16 link-local row that contains it, and catch-all
 * rows (0.0.0.0/0 public, ::/0 reserved, 2000::/3 public) give every address exactly one verdict.
 *
 * Rows that carry an `embed` do not decide by themselves: the IPv4 address inside is extracted and
 * judged instead (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo).
 */
import ipaddr from 'ipaddr.js';

/** A closed set. Each member is also a metric label and appears in denial reasons. */
export const ADDRESS_CLASSES = [
  'public',
  'loopback',
  'unspecified',
  'this_network',
  'private',
  'unique_local',
  'shared',
  'link_local',
  'multicast',
  'broadcast',
  'documentation',
  'benchmarking',
  'reserved',
  'metadata',
  'self',
] as const;
export type AddressClass = (typeof ADDRESS_CLASSES)[number];

/** How an IPv4 address hides inside an IPv6 one. */
export type Embedding = 'mapped' | 'translated' | 'compat' | 'nat64' | 'nat64_local' | '6to4' | 'teredo';

export interface Verdict {
  class: AddressClass;
  reason: string;
  rfc: string;
}

interface RawRow {
  cidr: string;
  verdict?: Verdict;
  embed?: { via: Embedding; reason: string; rfc: string };
}

export interface Row {
  net: ipaddr.IPv4 | ipaddr.IPv6;
  bits: number;
  cidr: string;
  verdict?: Verdict;
  embed?: { via: Embedding; reason: string; rfc: string };
}

const v = (cls: AddressClass, reason: string, rfc: string): Verdict => ({ class: cls, reason, rfc });
const meta = (who: string): Verdict => v('metadata', `cloud metadata endpoint (${who})`, who);

const RFC1918 = v('private', 'private address (RFC 1918)', 'RFC 1918');
const IETF4 = v('reserved', 'IETF protocol assignment (RFC 6890)', 'RFC 6890');

const IPV4_ROWS: RawRow[] = [
  { cidr: '0.0.0.0/0', verdict: v('public', 'public unicast address (RFC 6890)', 'RFC 6890') },
  // Linux connects 0.0.0.0 to the local host, so "unspecified" must never be dialled.
  { cidr: '0.0.0.0/32', verdict: v('unspecified', 'unspecified address (RFC 1122)', 'RFC 1122') },
  { cidr: '0.0.0.0/8', verdict: v('this_network', '"this network" address (RFC 791)', 'RFC 791') },
  { cidr: '10.0.0.0/8', verdict: RFC1918 },
  { cidr: '100.64.0.0/10', verdict: v('shared', 'shared address space / CGNAT (RFC 6598)', 'RFC 6598') },
  { cidr: '127.0.0.0/8', verdict: v('loopback', 'loopback address (RFC 1122)', 'RFC 1122') },
  { cidr: '169.254.0.0/16', verdict: v('link_local', 'link-local address (RFC 3927)', 'RFC 3927') },
  { cidr: '172.16.0.0/12', verdict: RFC1918 },
  // Includes 192.0.0.9 (PCP) and 192.0.0.10 (TURN) anycast, which IANA marks globally reachable;
  // no agent has a reason to reach them, so the whole block is refused.
  { cidr: '192.0.0.0/24', verdict: IETF4 },
  { cidr: '192.0.0.0/29', verdict: v('reserved', 'DS-Lite transition address (RFC 7335)', 'RFC 7335') },
  { cidr: '192.0.0.170/31', verdict: v('reserved', 'NAT64/DNS64 discovery address (RFC 8880)', 'RFC 8880') },
  { cidr: '192.0.2.0/24', verdict: v('documentation', 'documentation address TEST-NET-1 (RFC 5737)', 'RFC 5737') },
  { cidr: '192.31.196.0/24', verdict: v('reserved', 'AS112 anycast address (RFC 7535)', 'RFC 7535') },
  { cidr: '192.52.193.0/24', verdict: v('reserved', 'AMT relay anycast address (RFC 7450)', 'RFC 7450') },
  { cidr: '192.88.99.0/24', verdict: v('reserved', 'deprecated 6to4 relay anycast address (RFC 7526)', 'RFC 7526') },
  { cidr: '192.168.0.0/16', verdict: RFC1918 },
  { cidr: '192.175.48.0/24', verdict: v('reserved', 'AS112 direct delegation address (RFC 7534)', 'RFC 7534') },
  { cidr: '198.18.0.0/15', verdict: v('benchmarking', 'benchmarking address (RFC 2544)', 'RFC 2544') },
  { cidr: '198.51.100.0/24', verdict: v('documentation', 'documentation address TEST-NET-2 (RFC 5737)', 'RFC 5737') },
  { cidr: '203.0.113.0/24', verdict: v('documentation', 'documentation address TEST-NET-3 (RFC 5737)', 'RFC 5737') },
  { cidr: '224.0.0.0/4', verdict: v('multicast', 'multicast address (RFC 5771)', 'RFC 5771') },
  { cidr: '240.0.0.0/4', verdict: v('reserved', 'reserved for future use (RFC 1112)', 'RFC 1112') },
  { cidr: '255.255.255.255/32', verdict: v('broadcast', 'limited broadcast address (RFC 919)', 'RFC 919') },
  // Metadata endpoints. Several sit outside link-local, where a plain private/link-local check misses them.
  { cidr: '169.254.169.254/32', verdict: meta('AWS, GCP, Azure, OpenStack, DigitalOcean') },
  { cidr: '169.254.170.2/32', verdict: meta('AWS ECS task credentials') },
  { cidr: '169.254.170.23/32', verdict: meta('AWS EKS pod identity') },
  { cidr: '169.254.0.23/32', verdict: meta('Tencent Cloud') },
  { cidr: '100.100.100.200/32', verdict: meta('Alibaba Cloud') },
  { cidr: '168.63.129.16/32', verdict: meta('Azure WireServer') },
  { cidr: '192.0.0.192/32', verdict: meta('Oracle Cloud') },
];

const IPV6_ROWS: RawRow[] = [
  // Everything outside global unicast is IANA-reserved; only 2000::/3 can be public.
  { cidr: '::/0', verdict: v('reserved', 'outside global unicast 2000::/3 (RFC 4291)', 'RFC 4291') },
  { cidr: '2000::/3', verdict: v('public', 'global unicast address (RFC 4291)', 'RFC 4291') },
  { cidr: '::/128', verdict: v('unspecified', 'unspecified address (RFC 4291)', 'RFC 4291') },
  { cidr: '::1/128', verdict: v('loopback', 'loopback address (RFC 4291)', 'RFC 4291') },
  { cidr: '::ffff:0:0/96', embed: { via: 'mapped', reason: 'IPv4-mapped IPv6 (RFC 4291)', rfc: 'RFC 4291' } },
  { cidr: '::ffff:0:0:0/96', embed: { via: 'translated', reason: 'IPv4-translated IPv6 (RFC 6145)', rfc: 'RFC 6145' } },
  { cidr: '::/96', embed: { via: 'compat', reason: 'IPv4-compatible IPv6 (RFC 4291)', rfc: 'RFC 4291' } },
  { cidr: '64:ff9b::/96', embed: { via: 'nat64', reason: 'NAT64 well-known prefix (RFC 6052)', rfc: 'RFC 6052' } },
  { cidr: '64:ff9b:1::/48', embed: { via: 'nat64_local', reason: 'NAT64 local-use prefix (RFC 8215)', rfc: 'RFC 8215' } },
  { cidr: '100::/64', verdict: v('reserved', 'discard-only address (RFC 6666)', 'RFC 6666') },
  { cidr: '100:0:0:1::/64', verdict: v('reserved', 'dummy IPv6 prefix (RFC 9780)', 'RFC 9780') },
  { cidr: '2001::/23', verdict: v('reserved', 'IETF protocol assignment (RFC 2928)', 'RFC 2928') },
  { cidr: '2001::/32', embed: { via: 'teredo', reason: 'Teredo (RFC 4380)', rfc: 'RFC 4380' } },
  { cidr: '2001:2::/48', verdict: v('benchmarking', 'benchmarking address (RFC 5180)', 'RFC 5180') },
  { cidr: '2001:db8::/32', verdict: v('documentation', 'documentation address (RFC 3849)', 'RFC 3849') },
  { cidr: '3fff::/20', verdict: v('documentation', 'documentation address (RFC 9637)', 'RFC 9637') },
  { cidr: '2002::/16', embed: { via: '6to4', reason: '6to4 (RFC 3056)', rfc: 'RFC 3056' } },
  { cidr: '2620:4f:8000::/48', verdict: v('reserved', 'AS112 direct delegation address (RFC 7534)', 'RFC 7534') },
  { cidr: '5f00::/16', verdict: v('reserved', 'segment routing SID block (RFC 9602)', 'RFC 9602') },
  { cidr: 'fc00::/7', verdict: v('unique_local', 'unique local address (RFC 4193)', 'RFC 4193') },
  { cidr: 'fe80::/10', verdict: v('link_local', 'link-local address (RFC 4291)', 'RFC 4291') },
  { cidr: 'fec0::/10', verdict: v('private', 'deprecated site-local address (RFC 3879)', 'RFC 3879') },
  { cidr: 'ff00::/8', verdict: v('multicast', 'multicast address (RFC 4291)', 'RFC 4291') },
  { cidr: 'fd00:ec2::254/128', verdict: meta('AWS IMDS IPv6') },
  { cidr: 'fd00:ec2::23/128', verdict: meta('AWS EKS pod identity IPv6') },
  { cidr: 'fd20:ce::254/128', verdict: meta('GCP metadata IPv6') },
];

function compile(rows: RawRow[]): Row[] {
  return rows
    .map((r): Row => {
      const [net, bits] = ipaddr.parseCIDR(r.cidr);
      return { net, bits, cidr: r.cidr, ...(r.verdict ? { verdict: r.verdict } : {}), ...(r.embed ? { embed: r.embed } : {}) };
    })
    .sort((a, b) => b.bits - a.bits); // longest prefix first
}

export const V4_TABLE: readonly Row[] = compile(IPV4_ROWS);
export const V6_TABLE: readonly Row[] = compile(IPV6_ROWS);

/** The most specific row containing `addr`. The catch-all rows guarantee one exists. */
export function lookupRow(addr: ipaddr.IPv4 | ipaddr.IPv6): Row {
  const table = addr.kind() === 'ipv4' ? V4_TABLE : V6_TABLE;
  for (const row of table) {
    if (row.net.kind() === addr.kind() && addr.match(row.net, row.bits)) return row;
  }
  throw new Error('address table has no catch-all row'); // unreachable: a bug in the table
}
