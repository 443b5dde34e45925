/**
 * The `rules:` section → compiled Rule values. docs/rules.md is the reference for every key read
 * here; test/golden/rules/ holds one file per validation message.
 */
import { CATALOG_ENTRIES } from '../policy/catalog.js';
import { compilePathGlob, compilePathRegex, compileRe2, methodsFromClasses } from '../policy/match.js';
import type { CatalogEntry, PathPattern, QueryCondition, Rule, Scheme } from '../policy/types.js';
import { compileExceptions, type AddressException } from '../net/exceptions.js';
import { readCapability } from './capability.js';
import { readDuration, readHosts, readKeys, readName, readRateLimit, readUntil } from './common.js';
import type { Cursor } from './yaml.js';

const SCHEMES: readonly Scheme[] = ['http', 'https'];
export const RULE_KEYS = [
  'name',
  'action',
  'agents',
  'methods',
  'hosts',
  'paths',
  'path_regex',
  'query',
  'schemes',
  'catalog',
  'until',
  'rate_limit',
  'addresses',
  'unsafe_addresses',
  'passthrough',
  'description',
  'body_schema',
  'mcp',
  'jsonrpc',
  'taints',
  'unless_tainted',
  'ask_timeout',
] as const;

/** `inShared`: the rule belongs to a shared policy, whose agents come from where it is included. */
export function readRule(c: Cursor, index: number, inShared = false): Rule | undefined {
  const m = c.map(RULE_KEYS, ['hosts', 'methods']);
  if (!m) return undefined;
  const name = m.get('name') ? readName(m.get('name')!, 'rule') : `rule-${index + 1}`;
  let action: Rule['action'] = 'allow';
  const act = m.get('action')?.str();
  if (act !== undefined) {
    if (act === 'allow' || act === 'deny' || act === 'ask') action = act;
    else m.get('action')!.fail(`"${act.slice(0, 40)}" is not an action (allow, deny, ask)`);
  }
  let agents: Rule['agents'] = 'any';
  const ac = m.get('agents');
  if (ac && inShared) ac.fail('rules of a shared policy take their agents from the include; remove "agents" here');
  else if (ac) {
    const list = ac.strings() ?? [];
    if (!(list.length === 1 && (list[0] === '*' || list[0] === 'any'))) agents = new Set(list);
  }
  const mc = m.get('methods');
  const methodSource = mc?.strings() ?? [];
  const spec = methodsFromClasses(methodSource);
  spec.bad.forEach((b) => mc?.fail(b));
  const hosts = m.get('hosts') && readHosts(m.get('hosts')!);
  const paths = readPaths(m.get('paths'), m.get('path_regex'));
  let schemes = new Set<Scheme>(SCHEMES);
  const sc = m.get('schemes');
  if (sc) {
    schemes = new Set();
    for (const s of sc.strings() ?? []) {
      if ((SCHEMES as readonly string[]).includes(s)) schemes.add(s as Scheme);
      else sc.fail(`"${s.slice(0, 40)}" is not a scheme (http, https)`);
    }
  }
  const catalog = new Set<CatalogEntry>();
  const cc = m.get('catalog');
  for (const s of cc?.strings() ?? []) {
    if ((CATALOG_ENTRIES as readonly string[]).includes(s)) catalog.add(s as CatalogEntry);
    else cc?.fail(`"${s.slice(0, 40)}" is not a catalog entry (${CATALOG_ENTRIES.join(', ')})`);
  }
  const query = m.get('query') ? readQuery(m.get('query')!) : [];
  const until = m.get('until') ? readUntil(m.get('until')!) : null;
  const rl = m.get('rate_limit');
  const rateLimit = rl ? readRateLimit(rl) : null;
  if (rl && action === 'deny') rl.fail('a deny rule refuses; a rate limit belongs on an allow rule');
  const addressExceptions = readExceptions(m, hosts ?? []);
  if (action === 'deny' && addressExceptions.length > 0) (m.get('addresses') ?? m.get('unsafe_addresses'))!.fail('address exceptions belong on an allow rule');
  const dc = m.get('description');
  const description = dc ? (dc.str() ?? null) : null;
  const pt = m.get('passthrough');
  const passthrough = pt?.bool() === true;
  if (pt && passthrough) {
    // Nothing inside an opaque tunnel can be checked, so no condition may pretend to be.
    if (action !== 'allow') pt.fail('passthrough belongs on an allow rule');
    else if (spec.methods !== 'any') pt.fail('a passthrough tunnel carries every method unseen; write methods: [any]');
    else if (paths || query.length > 0 || catalog.size > 0 || rateLimit)
      pt.fail('a passthrough tunnel cannot enforce paths, query, catalog or rate_limit; remove them or the passthrough');
    else if (sc) pt.fail('a passthrough tunnel is whatever the client speaks; remove schemes');
    else if (['body_schema', 'mcp', 'jsonrpc', 'unless_tainted'].some((k) => m.has(k)))
      pt.fail('a passthrough tunnel cannot see bodies or sessions; remove body_schema, mcp, jsonrpc and unless_tainted, or the passthrough');
  }
  const cap = readCapability(m, action, catalog);
  const askTimeoutMs = readAskTimeout(m.get('ask_timeout'), action);
  if (!name || !hosts || until === undefined || rateLimit === undefined) return undefined;
  return {
    id: c.where(),
    name,
    action,
    agents,
    methods: spec.methods,
    classes: spec.classes,
    methodSource,
    hosts,
    paths,
    query,
    schemes,
    plainHttpWrites: sc !== undefined && schemes.has('http'),
    catalog,
    until,
    rateLimit,
    addressExceptions,
    origin: null,
    description,
    passthrough,
    ...cap,
    askTimeoutMs,
  };
}

function readPaths(pc: Cursor | undefined, rc: Cursor | undefined): PathPattern[] | null {
  if (!pc && !rc) return null;
  const out: PathPattern[] = [];
  for (const [cur, compile] of [
    [pc, compilePathGlob],
    [rc, compilePathRegex],
  ] as const) {
    for (const item of cur?.listOrOne() ?? []) {
      const s = item.str();
      if (s === undefined) continue;
      try {
        out.push(compile(s));
      } catch (e) {
        item.fail((e as Error).message);
      }
    }
  }
  return out;
}

/**
 * `query: { key: value }` (equals), or `key: { present: true } | { absent: true } |
 * { equals: "v" } | { matches: "re2" }`.
 */
function readQuery(c: Cursor): QueryCondition[] {
  const keys = c.map(readKeys(c));
  const out: QueryCondition[] = [];
  for (const [key, v] of keys ?? []) {
    if (typeof (v.node as { value?: unknown }).value === 'string') {
      const want = v.str({ nonEmpty: false }) ?? '';
      out.push({ key, kind: 'equals', source: `${key}=${want}`, test: (x) => x === want });
      continue;
    }
    const m = v.map(['present', 'absent', 'equals', 'matches']);
    if (!m) continue;
    if (m.size !== 1) {
      if (m.size > 1 || v.keys().length === 0) v.fail('give exactly one of: present, absent, equals, matches');
      continue;
    }
    const [[kind, val]] = [...m.entries()] as [[string, Cursor]];
    if (kind === 'present' || kind === 'absent') {
      if (val.bool() === false) val.fail(`write "${kind === 'present' ? 'absent' : 'present'}: true" instead of "${kind}: false"`);
      else out.push({ key, kind, source: `${key} ${kind}`, test: () => true });
    } else if (kind === 'equals') {
      const want = val.str({ nonEmpty: false });
      if (want !== undefined) out.push({ key, kind, source: `${key}=${want}`, test: (x) => x === want });
    } else {
      const src = val.str();
      if (src === undefined) continue;
      try {
        const re = compileRe2(src);
        out.push({ key, kind: 'matches', source: `${key} ~ ${src}`, test: (x) => re.test(x) });
      } catch (e) {
        val.fail((e as Error).message);
      }
    }
  }
  return out;
}

function readExceptions(m: Map<string, Cursor>, hosts: Rule['hosts']): AddressException[] {
  const out: AddressException[] = [];
  for (const [key, unsafe] of [
    ['addresses', false],
    ['unsafe_addresses', true],
  ] as const) {
    const xc = m.get(key);
    if (!xc) continue;
    const cidrs = xc.strings() ?? [];
    if (hosts.some((h) => h.kind !== 'exact')) {
      xc.fail('address exceptions apply per host: list only exact host names in this rule (no "*" or "*." patterns)');
      continue;
    }
    const ex = { cidrs, unsafe };
    try {
      compileExceptions([ex]);
      out.push(ex);
    } catch (e) {
      xc.fail((e as Error).message);
    }
  }
  return out;
}

/** Default and largest wait of an `action: ask` request for an operator (docs/console.md). */
export const DEFAULT_ASK_TIMEOUT_MS = 60_000;
export const MAX_ASK_TIMEOUT_MS = 10 * 60_000;

function readAskTimeout(c: Cursor | undefined, action: Rule['action']): number | null {
  if (action !== 'ask') {
    if (c) c.fail('ask_timeout belongs on an action: ask rule');
    return null;
  }
  if (!c) return DEFAULT_ASK_TIMEOUT_MS;
  const ms = readDuration(c);
  if (ms === undefined) return DEFAULT_ASK_TIMEOUT_MS;
  if (ms > MAX_ASK_TIMEOUT_MS || ms < 1000) {
    c.fail(`an operator can be waited for between 1s and ${MAX_ASK_TIMEOUT_MS / 60_000}m`);
    return DEFAULT_ASK_TIMEOUT_MS;
  }
  return ms;
}
