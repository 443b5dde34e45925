/**
 * The read-shaped-writes catalog: protocols where the HTTP method does not say whether a request
 * reads or writes. A rule opts in with `catalog: [git, graphql]`; for such a rule a request the
 * catalog recognises counts as a read or a write whatever its method (docs/rules.md, catalog).
 *
 * - git smart HTTP (git-http-backend, GitHub, GitLab): `POST …/git-upload-pack` is a fetch (read);
 *   `POST …/git-receive-pack` and its discovery `GET …/info/refs?service=git-receive-pack` are a
 *   push (write). A fetch must carry git's own content type, so a generic POST that merely ends in
 *   `/git-upload-pack` is still a write.
 * - GraphQL: a document whose operations are all queries is a read; any mutation or subscription,
 *   a body that is not JSON with a `query` string, or one too large to inspect is a write. Over GET
 *   the document is in `?query=`.
 *
 * Unrecognised → null: the method decides. Pure; the body arrives already peeked (bounded).
 */
import { hostMatches } from './match.js';
import type { CatalogEntry, Policy, RequestFacts } from './types.js';

export type Shape = { entry: CatalogEntry; kind: 'read' | 'write'; what: string };

export const CATALOG_ENTRIES: readonly CatalogEntry[] = ['git', 'graphql', 'mcp', 'jsonrpc'];
/**
 * The largest body the pipeline peeks at (GraphQL, JSON-RPC/MCP, body schemas); larger bodies
 * stay writes, and a rule that needs to see the body does not match them.
 */
export const MAX_PEEK_BYTES = 64 * 1024;

export function queryValues(rawPath: string, key: string): string[] {
  const q = rawPath.indexOf('?');
  if (q < 0) return [];
  const hash = rawPath.indexOf('#', q);
  const params = new URLSearchParams(rawPath.slice(q + 1, hash < 0 ? undefined : hash));
  return params.getAll(key);
}

export function classifyGit(req: RequestFacts, path: string): Shape | null {
  if (req.method === 'POST' && path.endsWith('/git-upload-pack')) {
    if (req.contentType === 'application/x-git-upload-pack-request') return { entry: 'git', kind: 'read', what: 'git fetch (upload-pack)' };
    return null;
  }
  if (path.endsWith('/git-receive-pack')) return { entry: 'git', kind: 'write', what: 'git push (receive-pack)' };
  if ((req.method === 'GET' || req.method === 'HEAD') && path.endsWith('/info/refs')) {
    const services = queryValues(req.path, 'service');
    if (services.some((s) => s !== 'git-upload-pack')) return { entry: 'git', kind: 'write', what: 'git push discovery (receive-pack)' };
    if (services.length > 0) return { entry: 'git', kind: 'read', what: 'git fetch discovery (upload-pack)' };
  }
  return null;
}

export function classifyGraphql(req: RequestFacts): Shape | null {
  if (req.method === 'GET' || req.method === 'HEAD') {
    const docs = queryValues(req.path, 'query');
    if (docs.length === 0) return null;
    return shapeOf(docs.every((d) => operationKinds(d).every((k) => k === 'query')) && docs.every((d) => operationKinds(d).length > 0));
  }
  if (req.method !== 'POST') return null;
  if (req.contentType !== 'application/json' && req.contentType !== 'application/graphql') return null;
  if (req.body === null || req.body === undefined) return shapeOf(false);
  const docs = req.contentType === 'application/graphql' ? [req.body] : jsonDocuments(req.body);
  if (!docs || docs.length === 0) return shapeOf(false);
  return shapeOf(
    docs.every((d) => {
      const kinds = operationKinds(d);
      return kinds.length > 0 && kinds.every((k) => k === 'query');
    }),
  );
}

function shapeOf(read: boolean): Shape {
  return read
    ? { entry: 'graphql', kind: 'read', what: 'GraphQL query' }
    : { entry: 'graphql', kind: 'write', what: 'GraphQL mutation (or a body that cannot be read as a query)' };
}

/** `{"query": "…"}` or a batch `[{…}, …]`; null when the body is not that shape. */
function jsonDocuments(body: string): string[] | null {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return null;
  }
  const items = Array.isArray(v) ? v : [v];
  const out: string[] = [];
  for (const it of items) {
    const q = (it as { query?: unknown } | null)?.query;
    if (typeof q !== 'string') return null; // persisted queries by hash: unknown, so a write
    out.push(q);
  }
  return out;
}

/**
 * The operation types of a GraphQL document: `query`, `mutation`, `subscription` at the top
 * level, and `query` for the `{ … }` shorthand. Fragments are skipped. Strings, block strings and
 * comments are skipped so a keyword inside them does not count. Unbalanced braces → [] (unknown).
 */
export function operationKinds(doc: string): string[] {
  const kinds: string[] = [];
  let depth = 0;
  let pendingKeyword: string | null = null;
  for (let i = 0; i < doc.length; i++) {
    const ch = doc[i] ?? '';
    if (ch === '#') {
      while (i < doc.length && doc[i] !== '\n') i++;
    } else if (ch === '"') {
      const block = doc.startsWith('"""', i);
      const end = block ? doc.indexOf('"""', i + 3) : findQuote(doc, i + 1);
      if (end < 0) return [];
      i = block ? end + 2 : end;
    } else if (ch === '{' || ch === '(' || ch === '[') {
      if (depth === 0 && ch === '{') {
        if (pendingKeyword === null) kinds.push('query');
        else if (pendingKeyword !== 'fragment') kinds.push(pendingKeyword);
        pendingKeyword = null;
      }
      depth++;
    } else if (ch === '}' || ch === ')' || ch === ']') {
      depth--;
      if (depth < 0) return [];
    } else if (depth === 0 && /[A-Za-z_]/.test(ch)) {
      let j = i;
      while (j < doc.length && /[A-Za-z0-9_]/.test(doc[j] ?? '')) j++;
      const word = doc.slice(i, j);
      if (pendingKeyword === null && ['query', 'mutation', 'subscription', 'fragment'].includes(word)) pendingKeyword = word;
      else if (pendingKeyword === null) return []; // a stray word at the top level: not a document we understand
      i = j - 1;
    }
  }
  return depth === 0 && pendingKeyword === null ? kinds : [];
}

function findQuote(s: string, from: number): number {
  for (let i = from; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === '"') return i;
    else if (s[i] === '\n') return -1;
  }
  return -1;
}

/** Classify once per request; each rule then honours only the entries it opted into. */
export function classify(req: RequestFacts, path: string): Shape[] {
  const out: Shape[] = [];
  const g = classifyGit(req, path);
  if (g) out.push(g);
  const q = classifyGraphql(req);
  if (q) out.push(q);
  return out;
}

/** "application/json; charset=utf-8" → "application/json". */
export function mediaType(header: string | string[] | undefined): string | null {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h) return null;
  return (h.split(';')[0] ?? '').trim().toLowerCase() || null;
}

/**
 * Should the pipeline peek at this request's body before deciding? Only when some rule for the
 * agent and host needs it: a GraphQL-shaped POST under the graphql entry, a POST under the mcp or
 * jsonrpc entry, or any request under a rule with a body schema. Everything else streams.
 */
export function needsBody(policy: Policy, req: RequestFacts): boolean {
  const graphqlShaped = req.method === 'POST' && (req.contentType === 'application/json' || req.contentType === 'application/graphql');
  // Plain loops: this runs for every request, and closures over `req` were made per call.
  const rules = policy.rules;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (!(r.bodySchema !== null || (req.method === 'POST' && (r.catalog.has('mcp') || r.catalog.has('jsonrpc'))) || (graphqlShaped && r.catalog.has('graphql')))) continue;
    if (r.agents !== 'any' && !r.agents.has(req.agent)) continue;
    for (let j = 0; j < r.hosts.length; j++) if (hostMatches(r.hosts[j]!, req.host, req.port, req.scheme)) return true;
  }
  return false;
}
