/**
 * Method-override headers. Many frameworks and APIs (Google APIs, Rails/Rack, ASP.NET, Express's
 * method-override) let `POST` or even `GET` carry `X-HTTP-Method-Override: DELETE` and act on it.
 * A method-aware policy that looked only at the request line would let a "read-only" agent
 * delete things, so a request carrying one is decided for the overriding method too, and must be
 * allowed as both. Values are validated: anything that is not a plain method token is refused.
 */
export const OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'] as const;

export type Override = { header: string; method: string } | { header: string; invalid: true };

export function methodOverrides(headers: Record<string, string | string[] | undefined>): Override[] {
  const out: Override[] = [];
  for (const h of OVERRIDE_HEADERS) {
    const v = headers[h];
    for (const raw of Array.isArray(v) ? v : v === undefined ? [] : [v]) {
      for (const part of raw.split(',')) {
        const m = part.trim().toUpperCase();
        if (/^[A-Z]{1,20}$/.test(m)) out.push({ header: h, method: m });
        else out.push({ header: h, invalid: true });
      }
    }
  }
  return out;
}
