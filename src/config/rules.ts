/**
 * The `rules:` and `settings:` sections → compiled Rule and Settings values. docs/rules.md is
 * the reference for every key read here.
 */
import { isIP } from 'node:net';
import { normaliseHost } from '../net/host.js';
import { compileExceptions, type AddressException } from '../net/exceptions.js';
import { compilePathGlob, methodsFromClasses } from '../policy/match.js';
import type { PathPattern, Rule, Scheme, Settings } from '../policy/types.js';
import { readHosts, readName } from './common.js';
import type { Cursor } from './yaml.js';

const SCHEMES: readonly Scheme[] = ['http', 'https'];

export function readRule(c: Cursor, index: number): Rule | undefined {
  const m = c.map(['name', 'agents', 'methods', 'hosts', 'paths', 'schemes', 'addresses', 'unsafe_addresses', 'description'], ['hosts', 'methods']);
  if (!m) return undefined;
  const name = m.get('name') ? readName(m.get('name')!, 'rule') : `rule-${index + 1}`;
  let agents: Rule['agents'] = 'any';
  const ac = m.get('agents');
  if (ac) {
    const list = ac.strings() ?? [];
    if (!(list.length === 1 && (list[0] === '*' || list[0] === 'any'))) agents = new Set(list);
  }
  const mc = m.get('methods');
  let methods: Rule['methods'] = new Set();
  let methodSource: string[] = [];
  if (mc) {
    methodSource = mc.strings() ?? [];
    const r = methodsFromClasses(methodSource);
    r.bad.forEach((b) => mc.fail(b));
    methods = r.methods;
  }
  const hosts = m.get('hosts') && readHosts(m.get('hosts')!);
  let paths: PathPattern[] | null = null;
  const pc = m.get('paths');
  if (pc) {
    paths = [];
    for (const item of pc.listOrOne() ?? []) {
      const s = item.str();
      if (s === undefined) continue;
      try {
        paths.push(compilePathGlob(s));
      } catch (e) {
        item.fail((e as Error).message);
      }
    }
  }
  let schemes = new Set<Scheme>(SCHEMES);
  const sc = m.get('schemes');
  if (sc) {
    const list = sc.strings() ?? [];
    schemes = new Set();
    for (const s of list) {
      if ((SCHEMES as readonly string[]).includes(s)) schemes.add(s as Scheme);
      else sc.fail(`"${s}" is not a scheme (http, https)`);
    }
  }
  const addressExceptions: AddressException[] = [];
  for (const [key, unsafe] of [['addresses', false], ['unsafe_addresses', true]] as const) {
    const xc = m.get(key);
    if (!xc) continue;
    const cidrs = xc.strings() ?? [];
    if (hosts?.some((h) => h.kind !== 'exact')) {
      xc.fail('address exceptions apply per host: list only exact host names in this rule (no "*" or "*." patterns)');
      continue;
    }
    const ex = { cidrs, unsafe };
    try {
      compileExceptions([ex]);
      addressExceptions.push(ex);
    } catch (e) {
      xc.fail((e as Error).message);
    }
  }
  if (!name || !hosts) return undefined;
  return { id: c.where(), name, agents, methods, methodSource, hosts, paths, schemes, addressExceptions };
}

export function readSettings(c: Cursor): Partial<Settings> | undefined {
  const m = c.map(['upstream_ca_file', 'dns_hosts']);
  if (!m) return undefined;
  const out: Partial<Settings> = {};
  const ca = m.get('upstream_ca_file');
  if (ca) out.upstreamCaFile = ca.str() ?? null;
  const dh = m.get('dns_hosts');
  if (dh) {
    const names = dh.map(readKeys(dh));
    const map: Record<string, string[]> = {};
    for (const [k, v] of names ?? []) {
      try {
        const n = normaliseHost(k);
        if (n.kind !== 'name') {
          v.fail(`"${k}" is an address, not a name`);
          continue;
        }
        const addrs = v.strings() ?? [];
        for (const a of addrs) if (isIP(a) === 0) v.fail(`"${a.slice(0, 60)}" is not an IP address`);
        map[n.host] = addrs;
      } catch (e) {
        v.fail(`"${k}" is not a valid host name: ${(e as Error).message}`);
      }
    }
    out.dnsHosts = map;
  }
  return out;
}

/** All keys of a mapping are allowed (dns_hosts is a free-form name → addresses map). */
function readKeys(c: Cursor): string[] {
  const node = c.node as { items?: Array<{ key?: { value?: unknown } }> };
  return (node.items ?? []).map((p) => String(p.key?.value ?? ''));
}
