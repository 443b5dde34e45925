/**
 * The caching resolver. Name resolution sits on every new upstream connection; Node's dns.lookup
 * runs getaddrinfo on libuv's 4-thread pool, so under load a slow DNS server stalls file I/O and
 * crypto too. We ask the DNS servers directly (c-ares, dns/promises resolve4/resolve6, which also
 * gives TTLs), cache answers for their TTL in a bounded LRU, and coalesce concurrent lookups of one
 * name into one query. dns.lookup is only a fallback for names DNS does not know (/etc/hosts).
 *
 * The resolver never decides anything: its answers are classified by the caller, including the
 * operator's static entries.
 */
import { promises as dnsPromises } from 'node:dns';
import { isIP } from 'node:net';
import { TurretError } from '../core/errors.js';
import { canonicalAddress, parseStrictAddress } from './classify.js';

export type LookupFn = (host: string) => Promise<Array<{ address: string; family: 4 | 6; ttl?: number }>>;
export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}
export interface Resolver {
  resolve(host: string): Promise<ResolvedAddress[]>;
}
export interface ResolverOptions {
  lookup?: LookupFn;
  /**
   * DNS servers ("1.2.3.4", "1.2.3.4:5353", "[::1]:53") used instead of the system's; when set,
   * getaddrinfo (/etc/hosts, nsswitch) is never consulted. Ignored when `lookup` is given.
   */
  servers?: readonly string[];
  staticHosts?: Record<string, string[]>;
  maxEntries?: number;
  minTtlMs?: number;
  maxTtlMs?: number;
  negativeTtlMs?: number;
  /** TTL for answers that carry none (the dns.lookup fallback). */
  defaultTtlMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'ENONAME']);
const MAX_ANSWERS = 64; // bound the work a hostile DNS answer can cause per connect

type Entry = { ok: true; addresses: readonly ResolvedAddress[]; expires: number } | { ok: false; expires: number };

function errCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

/**
 * Check one DNS server entry and return it in the form c-ares' setServers takes. Throws an Error
 * whose message says what is wrong (the config loader adds file:line:col).
 */
export function parseDnsServer(entry: string): string {
  if (typeof entry !== 'string' || entry.length === 0 || entry.length > 64) throw new Error('a DNS server must be "IP" or "IP:port"');
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(entry);
  const m = bracketed ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(entry) ?? /^([0-9a-fA-F:]+)()$/.exec(entry);
  const host = m?.[1] ?? '';
  if (bracketed && isIP(host) !== 6) throw new Error(`DNS server ${JSON.stringify(entry.slice(0, 64))}: brackets are for IPv6 addresses only`);
  const port = m?.[2] ? Number(m[2]) : 53;
  // Zone ids (fe80::1%eth0) are refused like everywhere else in Turret: isIP accepts them.
  if (!m || host.includes('%') || isIP(host) === 0)
    throw new Error(`DNS server ${JSON.stringify(entry.slice(0, 64))} is not an IP address (write "IP" or "IP:port"; IPv6 as "[addr]:port")`);
  if (port < 1 || port > 65535) throw new Error(`DNS server ${JSON.stringify(entry)} has a port out of range`);
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Default lookup: A and AAAA with TTLs from the DNS servers; getaddrinfo only when DNS has nothing
 * and no servers were named (named servers are the operator's whole answer: a fallback would
 * silently ask someone else).
 */
export function systemLookup(servers?: readonly string[]): LookupFn {
  const dns = new dnsPromises.Resolver();
  if (servers && servers.length > 0) dns.setServers(servers.map(parseDnsServer));
  return async (host) => {
    const [a, aaaa] = await Promise.allSettled([dns.resolve4(host, { ttl: true }), dns.resolve6(host, { ttl: true })]);
    const out: Array<{ address: string; family: 4 | 6; ttl?: number }> = [];
    if (a.status === 'fulfilled') for (const r of a.value) out.push({ address: r.address, family: 4, ttl: r.ttl });
    if (aaaa.status === 'fulfilled') for (const r of aaaa.value) out.push({ address: r.address, family: 6, ttl: r.ttl });
    if (out.length > 0) return out;
    if (servers && servers.length > 0) {
      // Prefer the A query's error (NXDOMAIN is cached as negative; a timeout is not).
      throw a.status === 'rejected' ? a.reason : aaaa.status === 'rejected' ? aaaa.reason : Object.assign(new Error('no addresses'), { code: 'ENODATA' });
    }
    const all = await dnsPromises.lookup(host, { all: true, verbatim: true });
    return all.map((r) => ({ address: r.address, family: r.family === 6 ? 6 : 4 }));
  };
}

function normaliseName(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

function staticTable(hosts: Record<string, string[]> | undefined): Map<string, readonly ResolvedAddress[]> {
  const table = new Map<string, readonly ResolvedAddress[]>();
  for (const [name, addrs] of Object.entries(hosts ?? {})) {
    if (!Array.isArray(addrs) || addrs.length === 0) throw new Error(`static host ${name} lists no addresses`);
    const list = addrs.map((a) => {
      try {
        const p = parseStrictAddress(a);
        return Object.freeze({ address: p.toString(), family: p.kind() === 'ipv4' ? 4 : 6 } as const);
      } catch {
        throw new Error(`static host ${name}: ${JSON.stringify(a)} is not an IP address`);
      }
    });
    table.set(normaliseName(name), Object.freeze(list));
  }
  return table;
}

export function createResolver(opts: ResolverOptions = {}): Resolver {
  const lookup = opts.lookup ?? systemLookup(opts.servers);
  const now = opts.now ?? Date.now;
  const maxEntries = Math.max(1, opts.maxEntries ?? 10_000);
  const minTtl = opts.minTtlMs ?? 1_000;
  const maxTtl = Math.max(minTtl, opts.maxTtlMs ?? 300_000);
  const negativeTtl = opts.negativeTtlMs ?? 5_000;
  const defaultTtl = opts.defaultTtlMs ?? 30_000;
  const statics = staticTable(opts.staticHosts);
  const cache = new Map<string, Entry>(); // insertion order = LRU order
  const inflight = new Map<string, Promise<readonly ResolvedAddress[]>>();

  const store = (name: string, entry: Entry): void => {
    cache.delete(name);
    cache.set(name, entry);
    while (cache.size > maxEntries) {
      const oldest = cache.keys().next();
      if (oldest.done) break;
      cache.delete(oldest.value);
    }
  };

  const notFound = (name: string) => new TurretError('dns_failed', `could not resolve ${name}`);

  async function query(name: string): Promise<readonly ResolvedAddress[]> {
    let answers: Awaited<ReturnType<LookupFn>>;
    try {
      answers = await lookup(name);
    } catch (e) {
      // Only a definite "no such name" is cached; timeouts and server failures are retried next time.
      if (NOT_FOUND.has(errCode(e) ?? '')) store(name, { ok: false, expires: now() + negativeTtl });
      throw new TurretError('dns_failed', `could not resolve ${name}`, { cause: e });
    }
    const seen = new Set<string>();
    const list: ResolvedAddress[] = [];
    let ttlMs = Infinity;
    for (const a of answers.slice(0, MAX_ANSWERS)) {
      let address: string;
      try {
        address = canonicalAddress(a.address);
      } catch {
        // A resolver answer we cannot parse is not skipped: it might be the dangerous one.
        throw new TurretError('dns_failed', `the resolver returned an invalid address for ${name}`);
      }
      if (seen.has(address)) continue;
      seen.add(address);
      list.push(Object.freeze({ address, family: address.includes(':') ? 6 : 4 } as const));
      ttlMs = Math.min(ttlMs, typeof a.ttl === 'number' && a.ttl >= 0 ? a.ttl * 1000 : defaultTtl);
    }
    if (list.length === 0) {
      store(name, { ok: false, expires: now() + negativeTtl });
      throw notFound(name);
    }
    const frozen = Object.freeze(list);
    store(name, { ok: true, addresses: frozen, expires: now() + Math.min(maxTtl, Math.max(minTtl, ttlMs)) });
    return frozen;
  }

  return {
    async resolve(host: string): Promise<ResolvedAddress[]> {
      if (typeof host !== 'string' || host === '') throw notFound(String(host));
      const name = normaliseName(host);
      const pinned = statics.get(name);
      if (pinned) return [...pinned];
      const hit = cache.get(name);
      if (hit && hit.expires > now()) {
        store(name, hit); // refresh LRU position
        if (!hit.ok) throw notFound(name);
        return [...hit.addresses];
      }
      if (hit) cache.delete(name);
      let p = inflight.get(name);
      if (!p) {
        p = query(name).finally(() => inflight.delete(name));
        inflight.set(name, p);
      }
      return [...(await p)];
    },
  };
}
