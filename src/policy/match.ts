/**
 * Matchers for hosts, ports, methods and paths. Pure functions over canonical inputs: hosts are
 * already normalised by net/host.ts (lower case, punycode, canonical IP), paths are normalised
 * here before any glob sees them.
 */
import RE2 from 're2';
import { foldPath } from './fold.js';
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

function removeDotSegments(p: string): string {
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

function pathOnly(raw: string): string {
  let p = raw;
  const q = p.search(/[?#]/);
  if (q >= 0) p = p.slice(0, q);
  return p.startsWith('/') ? p : `/${p}`;
}

/**
 * RFC 3986 normalisation for matching: percent-decode unreserved characters, upper-case the
 * remaining escapes, remove dot segments (§5.2.4, also when spelled %2E), collapse duplicate
 * slashes. `%2F` stays encoded: it is data inside a segment, never a separator. The query is dropped.
 */
export function normalisePath(raw: string): string {
  const p = pathOnly(raw).replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
  return removeDotSegments(p);
}

/**
 * The same path as a server that decodes `%2F` and `%5C`, treats `\` as `/` and drops `;params`
 * (Tomcat's `/..;/`) would see it. Servers disagree here, so an allow must hold for both views
 * and a deny applies if either view matches: `/public/..%2F..%2Fadmin` cannot reach `/admin`
 * past an allow for `/public/**`, nor dodge a deny on `/admin/**`.
 */
export function strictPathView(raw: string): string {
  let p = normalisePath(raw)
    .replace(/%2F|%5C/g, '/')
    .replace(/\\/g, '/');
  p = p
    .split('/')
    .map((seg) => seg.replace(/;.*$/, ''))
    .join('/');
  return removeDotSegments(p);
}

/** Distinct views of a path that rules are matched against (usually one). */
export function pathViews(raw: string): string[] {
  const a = normalisePath(raw);
  const b = strictPathView(raw);
  return a === b ? [a] : [a, b];
}

/**
 * The case-folded spellings of a path's views (fold.ts), dot segments removed again (a folded
 * fullwidth `．．` is `..`). Deny rules also match these; allows do not need to.
 */
export function foldedViews(views: readonly string[]): string[] {
  const out: string[] = [];
  for (const v of views) {
    const f = removeDotSegments(foldPath(v));
    if (!out.includes(f)) out.push(f);
  }
  return out;
}

/** A path regex written by the operator, run on re2 (linear time: no pattern can cause ReDoS). */
export function compilePathRegex(source: string): PathPattern {
  const re = compileRe2(source);
  // On folded paths the regex runs case-insensitively (re2's Unicode simple folding).
  const ci = new RE2(source, 'iu');
  return { source: `~${source}`, test: (p: string) => re.test(p), testFolded: (p: string) => ci.test(p) };
}

export function compileRe2(source: string): RE2 {
  if (source.length > 1000) throw new Error('regular expression is longer than 1000 characters');
  try {
    return new RE2(source, 'u');
  } catch (e) {
    throw new Error(`invalid regular expression (re2 syntax, no lookaround or backreferences): ${(e as Error).message.replace(/^.*?: /, '').slice(0, 120)}`);
  }
}

/**
 * Path glob: `*` matches within one segment, `**` (a whole segment) any number of segments,
 * including none: `/repos/**` matches `/repos`, `/repos/` and `/repos/a/b`. Compiled to RE2.
 * The pattern is normalised like a request path, so `%7E` and `~` are the same pattern.
 */
export function compilePathGlob(source: string): PathPattern {
  if (!source.startsWith('/')) throw new Error('a path pattern must start with "/"');
  if (/[?#]/.test(source)) throw new Error('a path pattern has no "?" or "#"; put conditions on query keys under "query:"');
  if (/(^|\/)\.\.?(\/|$)|\/\//.test(source)) throw new Error('a path pattern has no "." or ".." segments and no "//" (requests are normalised before matching)');
  const compiled = new RE2(globRegex(normalisePath(source)));
  // The folded pattern matches folded paths: `/Admin/**` denies `/ADMIN/x` as well as `/admin/x`.
  const folded = new RE2(globRegex(removeDotSegments(foldPath(normalisePath(source)))));
  return { source, test: (p: string) => compiled.test(p), testFolded: (p: string) => folded.test(p) };
}

function globRegex(normalised: string): string {
  const segs = normalised.split('/').slice(1);
  let re = '^';
  segs.forEach((seg, i) => {
    const last = i === segs.length - 1;
    if (seg === '**') {
      // Zero or more whole segments; at the end also "/" and nothing at all.
      re += last ? '(?:/.*)?' : '(?:/[^/]*)*';
      return;
    }
    if (seg.includes('**')) throw new Error('"**" must be a whole path segment (like /a/**/b); use "*" inside a segment');
    re +=
      '/' +
      seg
        .split('*')
        .map((lit) => lit.replace(/[\\^$.|?+()[\]{}]/g, '\\$&'))
        .join('[^/]*');
  });
  return `${re}$`;
}

export interface MethodSpec {
  methods: ReadonlySet<string> | 'any';
  classes: { read: boolean; write: boolean; websocket: boolean };
  bad: string[];
}

/**
 * `methods:` as written → methods and classes. `websocket` is a class of its own: a WebSocket
 * upgrade is a GET on the wire but opens a two-way channel, so only `websocket` (or `any`) allows
 * one; `read` and `GET` do not. `opts.websocket: false` where the class means nothing (secrets).
 */
export function methodsFromClasses(classes: string[], opts: { websocket?: boolean } = {}): MethodSpec {
  const out = new Set<string>();
  const bad: string[] = [];
  const cls = { read: false, write: false, websocket: false };
  const wsOk = opts.websocket !== false;
  for (const c of classes) {
    const u = c.trim();
    const l = u.toLowerCase();
    if (u === '*' || l === 'any') return { methods: 'any', classes: { read: true, write: true, websocket: wsOk }, bad };
    if (l === 'read') {
      cls.read = true;
      READ_METHODS.forEach((m) => out.add(m));
    } else if (l === 'write') {
      cls.write = true;
      WRITE_METHODS.forEach((m) => out.add(m));
    } else if (l === 'websocket' && wsOk) {
      cls.websocket = true;
    } else if (l === 'websocket') {
      bad.push('websocket is a method class of rules; a secret used in an upgrade is scoped by GET');
    } else if (/^[A-Z]+$/.test(u)) {
      if (FORBIDDEN_METHODS.has(u)) bad.push(`${u} is never allowed through the proxy`);
      else out.add(u);
    } else bad.push(`"${c.slice(0, 40)}" is not a method class (${wsOk ? 'read, write, websocket, any' : 'read, write, any'}) or an upper-case method name`);
  }
  return { methods: out, classes: cls, bad };
}
