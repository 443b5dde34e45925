/**
 * Readers shared by the rule-file sections: names and host patterns.
 */
import { normaliseHost } from '../net/host.js';
import type { HostPattern } from '../policy/types.js';
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


