/**
 * The `agents:` and `secrets:` sections: who may use the proxy and which secrets exist, where
 * their values come from and which hosts they may be sent to.
 */
import type { AgentDef, SecretDef, SecretSource } from '../policy/types.js';
import { ENV_NAME, HEADER, readHosts, readName } from './common.js';
import type { Cursor } from './yaml.js';

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

