/**
 * Method overrides. Many frameworks and APIs (Google APIs, Rails/Rack, ASP.NET, Express's
 * method-override, Laravel/Symfony `_method`) let `POST` or even `GET` carry
 * `X-HTTP-Method-Override: DELETE` (or `?_method=DELETE`) and act on it. A method-aware policy
 * that looked only at the request line would let a "read-only" agent delete things, so a request
 * carrying one is decided for the overriding method too, and must be allowed as both. Values are
 * validated: anything that is not a plain method token is refused.
 */
export const OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-method', 'x-original-http-method', 'x-method'] as const;

/** Query keys that frameworks read as the method (compared after URL-decoding, any letter case). */
export const OVERRIDE_QUERY_KEYS: readonly string[] = ['_method'];

export type Override = { header: string; method: string } | { header: string; invalid: true };

function parse(where: string, raw: string, out: Override[]): void {
  for (const part of raw.split(',')) {
    const m = part.trim().toUpperCase();
    if (/^[A-Z]{1,20}$/.test(m)) out.push({ header: where, method: m });
    else out.push({ header: where, invalid: true });
  }
}

/**
 * Every override a request carries: the headers above (Node lower-cases names and joins repeats
 * with ", ", so letter case and duplicates are covered) and `_method` in the query string (`path`
 * is the request target; `_METHOD`, `%5Fmethod` count too, since some decoders fold keys).
 */
export function methodOverrides(headers: Record<string, string | string[] | undefined>, path = ''): Override[] {
  const out: Override[] = [];
  for (const h of OVERRIDE_HEADERS) {
    const v = headers[h];
    // No array per absent header (six names, every request).
    if (v === undefined) continue;
    if (typeof v === 'string') parse(h, v, out);
    else for (const raw of v) parse(h, raw, out);
  }
  const q = path.indexOf('?');
  if (q >= 0) {
    const hash = path.indexOf('#', q);
    for (const [k, v] of new URLSearchParams(path.slice(q + 1, hash < 0 ? undefined : hash))) {
      if (OVERRIDE_QUERY_KEYS.includes(k.trim().toLowerCase())) parse(`query ${k.trim().toLowerCase()}`, v, out);
    }
  }
  return out;
}
