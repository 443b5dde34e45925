/**
 * Readers shared by the rule-file sections: names, host patterns, durations, rate limits,
 * timestamps, and the `settings:` section.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isIP } from 'node:net';
import { normaliseHost } from '../net/host.js';
import { parseDnsServer } from '../net/resolver.js';
import type { HostPattern, RateLimitSpec, Settings } from '../policy/types.js';
import type { Cursor } from './yaml.js';

export const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const HEADER = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
export const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

export function readName(c: Cursor, what: string): string | undefined {
  const s = c.str();
  if (s === undefined) return undefined;
  if (!NAME.test(s)) return c.fail(`${what} name "${s.slice(0, 40)}" must be lower-case letters, digits, ".", "_" or "-" (max 63)`);
  return s;
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

/** All keys of a mapping are allowed (free-form maps: dns_hosts, query). */
export function readKeys(c: Cursor): string[] {
  const node = c.node as { items?: Array<{ key?: { value?: unknown } }> };
  return (node.items ?? []).map((p) => String(p.key?.value ?? ''));
}

const DURATION = /^(\d{1,6})(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export function readDuration(c: Cursor): number | undefined {
  const s = c.str();
  if (s === undefined) return undefined;
  const m = DURATION.exec(s.trim());
  if (!m) return c.fail(`"${s.slice(0, 40)}" is not a duration (like 500ms, 30s, 1m, 1h, 1d)`);
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  if (ms < 100) return c.fail('a rate-limit interval must be at least 100ms');
  return ms;
}

/** `{ requests: 60, per: 1m, burst: 10 }`; burst defaults to requests. */
export function readRateLimit(c: Cursor, extraKeys: readonly string[] = []): RateLimitSpec | undefined {
  const m = c.map(['requests', 'per', 'burst', ...extraKeys], ['requests', 'per']);
  if (!m) return undefined;
  const requests = m.get('requests')?.int(1, 1_000_000);
  const perC = m.get('per');
  const perMs = perC ? readDuration(perC) : undefined;
  const burst = m.get('burst') ? m.get('burst')!.int(1, 1_000_000) : requests;
  if (requests === undefined || perMs === undefined || burst === undefined) return undefined;
  const per = perC?.str() ?? '';
  return { requests, perMs, burst, source: `${requests} per ${per}${burst !== requests ? `, burst ${burst}` : ''}` };
}

/** An RFC 3339 timestamp with a time zone: a bare date or local time would expire at a guessed instant. */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

export function readUntil(c: Cursor): number | undefined {
  const s = c.str();
  if (s === undefined) return undefined;
  const t = Date.parse(s);
  if (!TIMESTAMP.test(s) || Number.isNaN(t)) return c.fail(`"${s.slice(0, 40)}" is not a timestamp with a time zone (like 2026-07-01T18:00:00Z)`);
  return t;
}

export function readSettings(c: Cursor): Partial<Settings> | undefined {
  // shared_state is read by config/shared-state.ts (load.ts calls it): it needs the secret-source reader.
  const m = c.map(['upstream_ca_file', 'dns_hosts', 'dns_servers', 'taint_ttl', 'shared_state']);
  if (!m) return undefined;
  const out: Partial<Settings> = {};
  const tt = m.get('taint_ttl');
  if (tt) out.taintTtlMs = readDuration(tt);
  const ds = m.get('dns_servers');
  if (ds) {
    const list = ds.strings() ?? [];
    if (list.length === 0) ds.fail('dns_servers lists no servers (leave it out to use the system resolver)');
    for (const s of list) {
      try {
        parseDnsServer(s);
      } catch (e) {
        ds.fail((e as Error).message);
      }
    }
    out.dnsServers = list;
  }
  const ca = m.get('upstream_ca_file');
  if (ca) Object.assign(out, readCaFile(ca));
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

/**
 * settings.upstream_ca_file: read and checked here, so a file that is missing or holds no
 * certificate is a load problem with its file:line (not a start-up failure after `rules check`
 * said ok). A relative path is resolved from the rule file's directory, like body_schema files.
 */
function readCaFile(c: Cursor): Pick<Settings, 'upstreamCaFile' | 'upstreamCa'> | undefined {
  const name = c.str();
  if (name === undefined) return undefined;
  const file = path.resolve(path.dirname(c.doc.file), name);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return c.fail(`CA file "${name.slice(0, 80)}" cannot be read (a relative path is resolved from this rule file's directory)`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) return c.fail(`CA file "${name.slice(0, 80)}" holds no PEM certificate`);
  return { upstreamCaFile: file, upstreamCa: text };
}
