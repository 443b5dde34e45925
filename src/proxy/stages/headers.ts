/**
 * Header hygiene between client and upstream. Headers are re-serialised, never passed through
 * as raw bytes, and hop-by-hop fields (RFC 9110 §7.6.1) including any the Connection header
 * names are dropped in both directions. Framing (Content-Length / Transfer-Encoding) is decided
 * by the proxy for each side, never copied.
 */
import { DECODABLE } from './codings.js';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  // undici refuses "expect"; Node's server already answered 100-continue to the client.
  'expect',
]);

function connectionTokens(pairs: Array<[string, string]>): Set<string> {
  const out = new Set<string>();
  for (const [k, v] of pairs) {
    if (k.toLowerCase() === 'connection') v.split(',').forEach((t) => out.add(t.trim().toLowerCase()));
  }
  return out;
}

export function pairsFromRaw(raw: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i] ?? '', raw[i + 1] ?? '']);
  return out;
}

/** Host header value: IPv6 in brackets, default port omitted (RFC 9110 §7.2). */
export function hostHeader(host: string, port: number, scheme: 'http' | 'https'): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return port === (scheme === 'https' ? 443 : 80) ? h : `${h}:${port}`;
}

/**
 * Request headers for upstream: hop-by-hop removed, Host set, Accept-Encoding limited to what we
 * can decode and scrub (codings.ts). A list left empty becomes `identity`, so a client that asked
 * only for zstd or compress does not leave the upstream free to pick one (RFC 9110 §12.5.3).
 */
export function upstreamRequestHeaders(raw: string[], host: string, port: number, scheme: 'http' | 'https'): Array<[string, string]> {
  const pairs = pairsFromRaw(raw);
  const named = connectionTokens(pairs);
  const out: Array<[string, string]> = [['host', hostHeader(host, port, scheme)]];
  for (const [k, v] of pairs) {
    const lk = k.toLowerCase();
    if (HOP_BY_HOP.has(lk) || named.has(lk) || lk === 'content-length') continue;
    if (lk === 'accept-encoding') {
      const allowed = v
        .split(',')
        .map((t) => t.trim())
        .filter((t) => DECODABLE.has((t.split(';')[0] ?? '').trim().toLowerCase()));
      out.push([k, allowed.length > 0 ? allowed.join(', ') : 'identity']);
      continue;
    }
    out.push([k, v]);
  }
  return out;
}

/** Response headers for the client: hop-by-hop and framing removed (Node re-frames). */
export function clientResponseHeaders(headers: Record<string, string | string[] | undefined>, keepLength: boolean): Array<[string, string]> {
  const named = new Set<string>();
  const conn = headers.connection;
  for (const v of Array.isArray(conn) ? conn : conn ? [conn] : []) v.split(',').forEach((t) => named.add(t.trim().toLowerCase()));
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    const lk = k.toLowerCase();
    if (HOP_BY_HOP.has(lk) || named.has(lk)) continue;
    if (lk === 'content-length' && !keepLength) continue;
    for (const item of Array.isArray(v) ? v : [v]) out.push([k, item]);
  }
  return out;
}
