/**
 * Rule-file sections → compiled policy parts. Each reader takes a Cursor, reports problems at
 * their exact position, and returns compiled values (or nothing when the input was invalid).
 * docs/rules.md is the reference for every key read here.
 */
import { isIP } from 'node:net';
import { normaliseHost } from '../net/host.js';
import { compileExceptions, type AddressException } from '../net/exceptions.js';
import { compilePathGlob, methodsFromClasses } from '../policy/match.js';
import type { AgentDef, HostPattern, PathPattern, Rule, Scheme, SecretDef, SecretSource, Settings } from '../policy/types.js';
import type { Cursor } from './yaml.js';

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const HEADER = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

export function readName(c: Cursor, what: string): string | undefined {
  const s = c.str();
  if (s === undefined) return undefined;
  if (!NAME.test(s)) return c.fail(`${what} name "${s.slice(0, 40)}" must be lower-case letters, digits, ".", "_" or "-" (max 63)`);
  return s;
}

export function readSource(c: Cursor): SecretSource | undefined {
  const m = c.map(['env', 'file', 'value']);
  if (!m) return undefined;
  if (m.size !== 1) return c.fail('a secret source names exactly one of: env, file');
  const [[key, v]] = [...m.entries()] as [[string, Cursor]];
  const s = v.str();
  if (s === undefined) return undefined;
  switch (key) {
    case 'env':
      if (!ENV_NAME.test(s)) return v.fail(`"${s.slice(0, 40)}" is not an environment variable name`);
      return { kind: 'env', name: s };
    case 'file':
      return { kind: 'file', path: s };
    default:
      // Never echo the value: it is a secret written where it must not be.
      return v.fail('secret values must not be written in rule files; use env: or file:');
  }
}

export function readHostPattern(c: Cursor, raw: string): HostPattern | undefined {
  let host = raw.trim();
  let port: HostPattern['port'] = null;
  const m = /^(.*):(\*|\d+)$/.exec(host);
  if (m && !host.startsWith('[') && (m[1] ?? '').includes(':') === false) {
    host = m[1] ?? '';
    port = m[2] === '*' ? 'any' : Number(m[2]);
  } else {
    const v6 = /^\[([^\]]+)\](?::(\*|\d+))?$/.exec(host);
    if (v6) {
      host = v6[1] ?? '';
      if (v6[2]) port = v6[2] === '*' ? 'any' : Number(v6[2]);
    }
  }
  if (typeof port === 'number' && (port < 1 || port > 65535)) return c.fail(`port in "${raw}" must be 1-65535`);
  if (host === '*') return { source: raw, kind: 'any', host: '', port };
  let kind: HostPattern['kind'] = 'exact';
  if (host.startsWith('*.')) {
    kind = 'suffix';
    host = host.slice(2);
  }
  if (host.includes('*')) return c.fail(`"${raw}": "*" is only allowed as a whole host or as a leading "*." label`);
  try {
    const n = normaliseHost(host);
    if (kind === 'suffix' && n.kind !== 'name') return c.fail(`"${raw}": a wildcard needs a domain name suffix`);
    return { source: raw, kind, host: n.host, port };
  } catch (e) {
    return c.fail(`"${raw}" is not a valid host: ${(e as Error).message}`);
  }
}

export function readHosts(c: Cursor): HostPattern[] | undefined {
  const list = c.listOrOne();
  if (!list) return undefined;
  const out: HostPattern[] = [];
  for (const item of list) {
    const s = item.str();
    if (s === undefined) continue;
    const p = readHostPattern(item, s);
    if (p) out.push(p);
  }
  if (out.length === 0 && list.length === 0) c.fail('must list at least one host');
  return out;
}

export function readAgent(c: Cursor): AgentDef | undefined {
  const m = c.map(['name', 'token', 'description'], ['name']);
  if (!m) return undefined;
  const name = m.get('name') && readName(m.get('name')!, 'agent');
  const tok = m.get('token');
  const token = tok ? readSource(tok) : null;
  if (!name || token === undefined) return undefined;
  return { name, token, where: c.where() };
}

export function readSecret(c: Cursor): SecretDef | undefined {
  const m = c.map(['name', 'from', 'hosts', 'headers', 'env', 'description'], ['name', 'from', 'hosts']);
  if (!m) return undefined;
  const name = m.get('name') && readName(m.get('name')!, 'secret');
  const source = m.get('from') && readSource(m.get('from')!);
  const hosts = m.get('hosts') && readHosts(m.get('hosts')!);
  if (hosts?.some((h) => h.kind === 'any')) m.get('hosts')!.fail('a secret cannot be bound to every host ("*"); name the hosts it belongs to');
  let headers: string[] = [];
  const hc = m.get('headers');
  if (hc) {
    headers = (hc.strings() ?? []).map((h) => h.toLowerCase());
    for (const h of headers) {
      if (!HEADER.test(h)) hc.fail(`"${h.slice(0, 40)}" is not a header name`);
      if (['host', 'proxy-authorization', 'content-length', 'transfer-encoding', 'connection'].includes(h)) hc.fail(`"${h}" cannot carry a secret`);
    }
  }
  let env: string | null = null;
  const ec = m.get('env');
  if (ec) {
    const s = ec.str();
    if (s !== undefined && !ENV_NAME.test(s)) ec.fail(`"${s.slice(0, 40)}" is not an environment variable name`);
    else if (s !== undefined) env = s;
  }
  if (!name || !source || !hosts) return undefined;
  return { name, source, hosts, headers, env, where: c.where() };
}

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
