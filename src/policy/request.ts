/**
 * "METHOD URL" → RequestFacts, for `examples:` in rule files and `turret rules explain`. The URL is
 * read the way the proxy reads a request target (net/host.ts canonical host, default ports), so
 * an example or an explanation decides exactly what the proxy would.
 */
import { parseAuthority } from '../net/host.js';
import type { RequestFacts, Scheme, TaintMark } from './types.js';

/** Session labels assumed by `rules explain --tainted a,b` and an example's `tainted:` list. */
export function assumedTaints(labels: string | readonly string[] | undefined, by = 'explain --tainted'): ReadonlyMap<string, TaintMark> | undefined {
  const list = (typeof labels === 'string' ? labels.split(',') : (labels ?? [])).map((l) => l.trim()).filter(Boolean);
  if (list.length === 0) return undefined;
  return new Map(list.map((label) => [label, { label, request: `(assumed by ${by})`, rule: '(none)', at: 0, expires: Infinity }]));
}

const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/;

export interface RequestOptions {
  contentType?: string | null;
  body?: string | null;
  /** Ask about a WebSocket upgrade (also: method `websocket`, or a ws:// / wss:// URL). */
  websocket?: boolean;
  /** Session labels to assume (explain --tainted, an example's tainted:). */
  taints?: ReadonlyMap<string, TaintMark>;
}

export function parseRequest(agent: string, method: string, url: string, opts: RequestOptions = {}): RequestFacts {
  let websocket = opts.websocket === true;
  // `websocket` stands for the upgrade's GET, so examples and explain can ask about one.
  if (method.toUpperCase() === 'WEBSOCKET') {
    websocket = true;
    method = 'GET';
  }
  if (!/^[A-Z]{1,20}$/.test(method)) throw new Error(`"${method.slice(0, 20)}" is not an upper-case HTTP method (or websocket)`);
  if (websocket && method !== 'GET') throw new Error('a WebSocket upgrade is a GET');
  const m = ABSOLUTE.exec(url);
  if (!m) throw new Error(`"${url.slice(0, 80)}" is not an absolute URL (like https://host/path)`);
  let scheme = (m[1] ?? '').toLowerCase();
  if (scheme === 'ws' || scheme === 'wss') {
    if (method !== 'GET') throw new Error('a ws:// or wss:// URL is a WebSocket upgrade, a GET');
    websocket = true;
    scheme = scheme === 'wss' ? 'https' : 'http';
  }
  if (scheme !== 'http' && scheme !== 'https') throw new Error(`scheme "${scheme.slice(0, 20)}" is not http, https, ws or wss`);
  if (/[\x00-\x20\x7f]/.test(m[3] ?? '')) throw new Error('the path contains spaces or control characters');
  let t;
  try {
    t = parseAuthority(m[2] ?? '', scheme === 'https' ? 443 : 80);
  } catch (e) {
    throw new Error(`"${(m[2] ?? '').slice(0, 80)}" is not a valid host: ${(e as Error).message}`);
  }
  const raw = m[3] ?? '';
  const path = raw === '' ? '/' : raw.startsWith('?') ? `/${raw}` : raw;
  const facts: RequestFacts = { agent, method, scheme: scheme as Scheme, host: t.host, port: t.port, path, contentType: opts.contentType ?? null, body: opts.body ?? null };
  if (websocket) facts.websocket = true;
  if (opts.taints) facts.taints = opts.taints;
  return facts;
}

/** "GET https://example.com/x" → RequestFacts. */
export function parseRequestLine(agent: string, line: string, opts: RequestOptions = {}): RequestFacts {
  const parts = line.trim().split(/\s+/);
  if (parts.length !== 2) throw new Error(`"${line.slice(0, 80)}" is not "METHOD URL" (like "GET https://example.com/")`);
  return parseRequest(agent, parts[0] ?? '', parts[1] ?? '', opts);
}

/**
 * Does this request ask to switch to WebSocket? Any `Upgrade` header (repeated or a list, any
 * letter case) naming `websocket` makes it one for the policy, whether or not `Connection:
 * upgrade` came along: deciding a plain request as an upgrade only ever narrows what passes.
 */
export function asksWebSocket(headers: Record<string, string | string[] | undefined>): boolean {
  const v = headers.upgrade;
  // No Upgrade field (nearly every request): no list made to find that out.
  if (v === undefined) return false;
  const all = Array.isArray(v) ? v : [v];
  return all.some((s) => s.split(',').some((p) => /^websocket(\/|$)/i.test(p.trim())));
}
