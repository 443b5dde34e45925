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

const NO_TOKENS: ReadonlySet<string> = new Set();

/**
 * Adds the field names a Connection value names to `into` (made when the first is added), except
 * those that are hop-by-hop anyway: `keep-alive`, what nearly every message sends, makes no set
 * (`close` does: a field named Close is dropped, RFC 9110 §7.6.1 reserves the name for this).
 * Comma by comma, without a split array per value.
 */
function addTokens(value: string, into: Set<string> | null): Set<string> | null {
  // What nearly every upstream and client sends, compared whole: no slice, trim or lookup.
  if (value === 'keep-alive') return into;
  let start = 0;
  for (;;) {
    const comma = value.indexOf(',', start);
    const name = (comma === -1 ? value.slice(start) : value.slice(start, comma)).trim().toLowerCase();
    if (!HOP_BY_HOP.has(name)) (into ??= new Set()).add(name);
    if (comma === -1) return into;
    start = comma + 1;
  }
}

/**
 * The field names the request's Connection header(s) name, straight from the raw list. A name
 * that is hop-by-hop anyway (`keep-alive`, what clients send) is dropped regardless, so a request
 * naming only those makes no set, and no request makes pairs of its fields here. Only a name of
 * Connection's length is lower-cased to compare.
 */
function connectionTokens(raw: readonly string[]): ReadonlySet<string> {
  let out: Set<string> | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i] as string;
    if (k.length === 10 && k.toLowerCase() === 'connection') out = addTokens(raw[i + 1] as string, out);
  }
  return out ?? NO_TOKENS;
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
  // Straight from the raw list: a token set only when a Connection header names other fields.
  const named = connectionTokens(raw);
  const out: Array<[string, string]> = [['host', hostHeader(host, port, scheme)]];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i] as string;
    const v = raw[i + 1] as string;
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
  const conn = headers.connection;
  let named: ReadonlySet<string> = NO_TOKENS;
  if (conn !== undefined) {
    let tokens: Set<string> | null = null;
    if (typeof conn === 'string') tokens = addTokens(conn, null);
    else for (const v of conn) tokens = addTokens(v, tokens);
    named = tokens ?? NO_TOKENS;
  }
  const out: Array<[string, string]> = [];
  // for-in over undici's plain header object: no entries array per response. Own fields only,
  // as Object.entries gave (a field named __proto__ must not bring another object's keys in).
  for (const k in headers) {
    if (!Object.hasOwn(headers, k)) continue;
    const v = headers[k];
    if (v === undefined) continue;
    const lk = k.toLowerCase();
    if (HOP_BY_HOP.has(lk) || named.has(lk)) continue;
    if (lk === 'content-length' && !keepLength) continue;
    // A single value (nearly every field) is pushed as it is: no one-element array per field.
    if (typeof v === 'string') out.push([k, v]);
    else for (const item of v) out.push([k, item]);
  }
  return out;
}
