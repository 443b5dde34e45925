/**
 * Per-host address exceptions: "internal.corp may resolve to 10.2.3.4/32". The config module keeps
 * one list per host and calls compileExceptions once at load; the result is a small predicate the
 * guarded connect asks about each refused address of that host. There is no global exception.
 *
 * Validation happens here so that an exception that can never apply is a load error, not a silent
 * no-op: a public range (needs no exception), multicast/broadcast (TCP cannot reach them), a range
 * that is only loopback/link-local/metadata/unspecified without `unsafe`, an IPv6 form that hides an
 * IPv4 address (write the IPv4 range), a CIDR with host bits set, or one that does not parse.
 */
import ipaddr from 'ipaddr.js';
import type { AddressClass, Classification } from './classify.js';
import { V4_TABLE, V6_TABLE, type Row } from './ranges.js';

export interface AddressException {
  cidrs: string[];
  /** Required for loopback, link-local, metadata, unspecified, "this network" and self addresses. */
  unsafe: boolean;
}

type Net = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** What an exception may open, and whether that takes `unsafe`. Exhaustive on purpose. */
function exceptionNeeds(c: AddressClass): 'safe' | 'unsafe' | 'never' {
  switch (c) {
    case 'private':
    case 'unique_local':
    case 'shared':
    case 'documentation':
    case 'benchmarking':
    case 'reserved':
      return 'safe';
    case 'loopback':
    case 'unspecified':
    case 'this_network':
    case 'link_local':
    case 'metadata':
    case 'self':
      return 'unsafe';
    case 'public': // needs no exception
    case 'multicast': // TCP cannot connect to these
    case 'broadcast':
      return 'never';
    default: {
      const never: never = c;
      return never;
    }
  }
}

function contains(outer: Net, addr: ipaddr.IPv4 | ipaddr.IPv6): boolean {
  const [net, bits] = outer;
  if (net.kind() !== addr.kind()) return false;
  return (addr as ipaddr.IPv4).match(net as ipaddr.IPv4, bits);
}

function parseNet(cidr: string): Net {
  if (typeof cidr !== 'string' || cidr.includes('%')) throw new Error(`exception CIDR ${JSON.stringify(cidr)} is not a valid CIDR`);
  let net: Net;
  try {
    net = ipaddr.parseCIDR(cidr.includes('/') ? cidr : `${cidr}/${cidr.includes(':') ? 128 : 32}`);
  } catch {
    throw new Error(`exception CIDR ${JSON.stringify(cidr)} is not a valid CIDR (write e.g. 10.2.3.4/32)`);
  }
  const [addr, bits] = net;
  const base = addr.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(`${addr}/${bits}`) : ipaddr.IPv6.networkAddressFromCIDR(`${addr}/${bits}`);
  if (base.toString() !== addr.toString()) {
    throw new Error(`exception CIDR ${JSON.stringify(cidr)} has host bits set; did you mean ${base}/${bits}?`);
  }
  return net;
}

/** The classes an exception CIDR covers: the row containing it plus every row inside it. */
function coveredRows(net: Net): Row[] {
  const [addr, bits] = net;
  const table = addr.kind() === 'ipv4' ? V4_TABLE : V6_TABLE;
  const out: Row[] = [];
  const outer = table.find((r) => r.bits <= bits && contains([r.net, r.bits], addr));
  if (outer) out.push(outer);
  for (const r of table) if (r.bits > bits && contains(net, r.net)) out.push(r);
  return out;
}

interface Compiled {
  nets: Net[];
  classes: ReadonlySet<AddressClass>;
}

function compileOne(e: AddressException, index: number): Compiled {
  if (!e || !Array.isArray(e.cidrs) || e.cidrs.length === 0) throw new Error(`exception #${index + 1} lists no CIDRs`);
  const unsafe = e.unsafe === true;
  const allowed = new Set<AddressClass>();
  const nets: Net[] = [];
  for (const cidr of e.cidrs) {
    const net = parseNet(cidr);
    const rows = coveredRows(net);
    const embed = rows.find((r) => r.embed);
    if (embed) {
      throw new Error(`exception CIDR ${cidr} overlaps ${embed.embed?.reason ?? embed.cidr}; write the IPv4 range instead (IPv4-mapped addresses are matched by their IPv4)`);
    }
    const usable = new Set<AddressClass>();
    const needUnsafe = new Set<AddressClass>();
    for (const r of rows) {
      const cls = r.verdict?.class;
      if (!cls) continue;
      const need = exceptionNeeds(cls);
      if (need === 'safe' || (need === 'unsafe' && unsafe)) usable.add(cls);
      else if (need === 'unsafe') needUnsafe.add(cls);
    }
    if (usable.size === 0) {
      if (needUnsafe.size > 0) {
        throw new Error(`exception CIDR ${cidr} covers ${[...needUnsafe].join(', ')} addresses, which need an unsafe_ exception`);
      }
      throw new Error(
        `exception CIDR ${cidr} can never apply: it covers only ${[...new Set(rows.map((r) => r.verdict?.class))].join(', ')} addresses, which exceptions cannot open`,
      );
    }
    for (const c of usable) allowed.add(c);
    nets.push(net);
  }
  // 'self' is a runtime fact (interface addresses), so an unsafe exception may open it when the
  // address lies in one of its CIDRs; it cannot be checked at load time.
  if (unsafe) allowed.add('self');
  return { nets, classes: allowed };
}

/**
 * Compile a host's exceptions into a predicate: true when one of them permits this (non-public)
 * address. Public addresses return false: they need no exception. An IPv4-mapped IPv6 address is
 * matched by its IPv4, because that is where the kernel connects; other IPv6 forms that carry an
 * IPv4 (NAT64, 6to4, Teredo) are never opened by an exception.
 */
export function compileExceptions(list: AddressException[]): (c: Classification) => boolean {
  if (!Array.isArray(list)) throw new Error('exceptions must be a list');
  const compiled = list.map(compileOne);
  if (compiled.length === 0) return () => false;
  return (c: Classification): boolean => {
    if (c.class === 'public') return false;
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      if (c.embedded !== undefined) {
        if (c.via !== 'mapped') return false;
        addr = ipaddr.IPv4.parse(c.embedded);
      } else {
        addr = ipaddr.parse(c.address);
      }
    } catch {
      return false;
    }
    return compiled.some((e) => e.classes.has(c.class) && e.nets.some((n) => contains(n, addr)));
  };
}
