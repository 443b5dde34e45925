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

function parse(where: string, raw: string, out: Override[] | null): Override[] {
  const list = out ?? [];
  for (const part of raw.split(',')) {
    const m = part.trim().toUpperCase();
    if (/^[A-Z]{1,20}$/.test(m)) list.push({ header: where, method: m });
    else list.push({ header: where, invalid: true });
  }
  return list;
}

/** No override (nearly every request): one empty list for all, never added to. */
const NONE: readonly Override[] = Object.freeze([]);

/**
 * Every override a request carries: the headers above (Node lower-cases names and joins repeats
 * with ", ", so letter case and duplicates are covered) and `_method` in the query string (`path`
 * is the request target; `_METHOD`, `%5Fmethod` count too, since some decoders fold keys).
 */
export function methodOverrides(headers: Record<string, string | string[] | undefined>, path = ''): readonly Override[] {
  // The list is made at the first override only: most requests carry none.
  let out: Override[] | null = null;
  for (let i = 0; i < OVERRIDE_HEADERS.length; i++) {
    const h = OVERRIDE_HEADERS[i] as string;
    const v = headers[h];
    // No array per absent header (six names, every request).
    if (v === undefined) continue;
    if (typeof v === 'string') out = parse(h, v, out);
    else for (const raw of v) out = parse(h, raw, out);
  }
  const q = path.indexOf('?');
  if (q >= 0) {
    const hash = path.indexOf('#', q);
    for (const [k, v] of new URLSearchParams(path.slice(q + 1, hash < 0 ? undefined : hash))) {
      if (OVERRIDE_QUERY_KEYS.includes(k.trim().toLowerCase())) out = parse(`query ${k.trim().toLowerCase()}`, v, out);
    }
  }
  return out ?? NONE;
}
