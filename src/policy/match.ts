/**
 * Matchers for hosts, ports, methods and paths. Pure functions over canonical inputs: hosts are
 * already normalised by net/host.ts (lower case, punycode, canonical IP), paths are normalised
 * here before any glob sees them.
 */
import RE2 from 're2';
import type { HostPattern, PathPattern, Scheme } from './types.js';

export const READ_METHODS = ['GET', 'HEAD', 'OPTIONS'] as const;
export const WRITE_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'] as const;
/** Never allowed through the proxy: TRACE/TRACK reflect headers (credentials) back. */
export const FORBIDDEN_METHODS: ReadonlySet<string> = new Set(['TRACE', 'TRACK', 'CONNECT']);

export function defaultPort(scheme: Scheme): number {
  return scheme === 'https' ? 443 : 80;
}

export function hostMatches(p: HostPattern, host: string, port: number, scheme: Scheme): boolean {
  if (p.port === null) {
    if (port !== defaultPort(scheme)) return false;
  } else if (p.port !== 'any' && p.port !== port) {
    return false;
  }
  switch (p.kind) {
    case 'any':
      return true;
    case 'exact':
      return host === p.host;
    case 'suffix':
      // "*.example.com" matches sub.example.com and a.b.example.com, not example.com itself.
      return host.length > p.host.length + 1 && host.endsWith(`.${p.host}`);
  }
}

/** Port-agnostic host check used for tunnels (CONNECT decides the port separately). */
export function hostPortMatches(p: HostPattern, host: string, port: number): boolean {
  return hostMatches(p, host, port, 'https') || hostMatches(p, host, port, 'http');
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * RFC 3986 normalisation for matching: percent-decode unreserved characters, upper-case the
 * remaining escapes, remove dot segments (§5.2.4, also when spelled %2E), collapse duplicate
 * slashes. `%2F` stays encoded: it is data inside a segment, never a separator, so it cannot
 * turn one segment into two (or the reverse) to slip past a glob. The query is dropped.
 */
export function normalisePath(raw: string): string {
  let p = raw;
  const q = p.search(/[?#]/);
  if (q >= 0) p = p.slice(0, q);
  if (!p.startsWith('/')) p = `/${p}`;
  p = p.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
  const out: string[] = [];
  const segs = p.split('/');
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i] ?? '';
    const last = i === segs.length - 1;
    if (s === '.' || (s === '' && !last)) {
      if (last) out.push('');
      continue;
    }
    if (s === '..') {
      out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  return `/${out.join('/')}`;
}

/**
 * Path glob: `*` matches within one segment, `**` any number of whole segments (including
 * none). Compiled to RE2 so no glob an operator writes can cause backtracking blow-ups.
 */
export function compilePathGlob(source: string): PathPattern {
  if (!source.startsWith('/')) throw new Error('a path pattern must start with "/"');
  let re = '^';
  for (let i = 0; i < source.length; i++) {
    const ch = source[i] ?? '';
    if (ch === '*') {
      if (source[i + 1] === '*') {
        i++;
        // "/**/" or trailing "/**": zero or more segments.
        if (source[i + 1] === '/') {
          re += '(?:[^/]*/)*';
          i++;
        } else {
          re += '.*';
        }
      } else {
        re += '[^/]*';
      }
    } else {
      re += ch.replace(/[\\^$.|?+()[\]{}]/g, '\\$&');
    }
  }
  re += '$';
  const compiled = new RE2(re);
  return { source, test: (p: string) => compiled.test(p) };
}

export function methodsFromClasses(classes: string[]): { methods: ReadonlySet<string> | 'any'; bad: string[] } {
  const out = new Set<string>();
  const bad: string[] = [];
  for (const c of classes) {
    const u = c.trim();
    if (u === '*' || u.toLowerCase() === 'any') return { methods: 'any', bad };
    if (u.toLowerCase() === 'read') READ_METHODS.forEach((m) => out.add(m));
    else if (u.toLowerCase() === 'write') WRITE_METHODS.forEach((m) => out.add(m));
    else if (/^[A-Z]+$/.test(u)) {
      if (FORBIDDEN_METHODS.has(u)) bad.push(`${u} is never allowed through the proxy`);
      else out.add(u);
    } else bad.push(`"${c}" is not a method class (read, write, any) or an upper-case method name`);
  }
  return { methods: out, bad };
}
