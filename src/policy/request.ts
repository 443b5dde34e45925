/**
 * "METHOD URL" → RequestFacts, for `examples:` in rule files and `turret rules explain`. The URL is
 * read the way the proxy reads a request target (net/host.ts canonical host, default ports), so
 * an example or an explanation decides exactly what the proxy would.
 */
import { parseAuthority } from '../net/host.js';
import type { RequestFacts, Scheme } from './types.js';

const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/;

export function parseRequest(agent: string, method: string, url: string, opts: { contentType?: string | null; body?: string | null } = {}): RequestFacts {
  if (!/^[A-Z]{1,20}$/.test(method)) throw new Error(`"${method.slice(0, 20)}" is not an upper-case HTTP method`);
  const m = ABSOLUTE.exec(url);
  if (!m) throw new Error(`"${url.slice(0, 80)}" is not an absolute URL (like https://host/path)`);
  const scheme = (m[1] ?? '').toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') throw new Error(`scheme "${scheme.slice(0, 20)}" is not http or https`);
  if (/[\x00-\x20\x7f]/.test(m[3] ?? '')) throw new Error('the path contains spaces or control characters');
  let t;
  try {
    t = parseAuthority(m[2] ?? '', scheme === 'https' ? 443 : 80);
  } catch (e) {
    throw new Error(`"${(m[2] ?? '').slice(0, 80)}" is not a valid host: ${(e as Error).message}`);
  }
  const raw = m[3] ?? '';
  const path = raw === '' ? '/' : raw.startsWith('?') ? `/${raw}` : raw;
  return { agent, method, scheme: scheme as Scheme, host: t.host, port: t.port, path, contentType: opts.contentType ?? null, body: opts.body ?? null };
}

/** "GET https://example.com/x" → RequestFacts. */
export function parseRequestLine(agent: string, line: string, opts: { contentType?: string | null; body?: string | null } = {}): RequestFacts {
  const parts = line.trim().split(/\s+/);
  if (parts.length !== 2) throw new Error(`"${line.slice(0, 80)}" is not "METHOD URL" (like "GET https://example.com/")`);
  return parseRequest(agent, parts[0] ?? '', parts[1] ?? '', opts);
}
