/**
 * The `agents:` and `secrets:` sections: who may use the proxy and which secrets exist, where
 * their values come from, which hosts, methods and paths they may be sent to, and where in a
 * request a handle may stand for them. See docs/secrets.md.
 */
import { parseSourceRange, rangesOverlap, type SourceRange } from '../net/sources.js';
import { compilePathGlob, methodsFromClasses } from '../policy/match.js';
import type { AgentDef, AwsCredentialDef, PathPattern, SecretDef, SecretSource, SecretVariant } from '../policy/types.js';
import { ENV_NAME, HEADER, NAME, readDuration, readHosts, readName } from './common.js';
import type { Cursor } from './yaml.js';

const SOURCE_KINDS = ['env', 'file', 'command', 'store'] as const;

function duration(c: Cursor, fallbackMs: number, maxMs: number): number | undefined {
  const s = c.str();
  if (s === undefined) return undefined;
  const m = /^(\d{1,7})(ms|s|m|h)?$/.exec(s.trim());
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m?.[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  const v = m ? Number(m[1]) * mult : NaN;
  if (!(v > 0 && v <= maxMs)) return c.fail(`"${s.slice(0, 20)}" must be a duration like 500ms, 5s or 10m (at most ${maxMs / 1000}s)`) ?? fallbackMs;
  return v;
}

export function readSource(c: Cursor): SecretSource | undefined {
  const m = c.map([...SOURCE_KINDS, 'value', 'timeout', 'refresh']);
  if (!m) return undefined;
  if (m.has('value')) return m.get('value')!.fail('secret values must not be written in rule files; use env:, file:, command: or store:');
  const kinds = SOURCE_KINDS.filter((k) => m.has(k));
  if (kinds.length !== 1) return c.fail('a secret source names exactly one of: env, file, command, store');
  const kind = kinds[0]!;
  const v = m.get(kind)!;
  if (kind !== 'command' && (m.has('timeout') || m.has('refresh'))) return c.fail('timeout and refresh apply only to command sources');
  switch (kind) {
    case 'env': {
      const s = v.str();
      if (s === undefined) return undefined;
      if (!ENV_NAME.test(s)) return v.fail(`"${s.slice(0, 40)}" is not an environment variable name`);
      return { kind: 'env', name: s };
    }
    case 'file': {
      const s = v.str();
      return s === undefined ? undefined : { kind: 'file', path: s };
    }
    case 'store': {
      const s = v.str();
      if (s === undefined) return undefined;
      if (!NAME.test(s)) return v.fail(`store entry "${s.slice(0, 40)}" must be lower-case letters, digits, ".", "_" or "-"`);
      return { kind: 'store', name: s };
    }
    case 'command': {
      // A list, never a shell string: no quoting rules, no injection through a value.
      const items = v.list();
      if (!items) return undefined;
      const argv = items.map((i) => i.str({ nonEmpty: false }));
      if (argv.some((a) => a === undefined)) return undefined;
      if (argv.length === 0 || !argv[0]) return v.fail('command must list the program and its arguments, e.g. [pass, show, github]');
      const timeoutMs = m.has('timeout') ? duration(m.get('timeout')!, 5000, 60_000) : 5000;
      const refreshMs = m.has('refresh') ? duration(m.get('refresh')!, 300_000, 86_400_000) : 300_000;
      if (timeoutMs === undefined || refreshMs === undefined) return undefined;
      return { kind: 'command', argv: argv as string[], timeoutMs, refreshMs };
    }
  }
}

/**
 * `others`: the agents defined so far (this and earlier files). A source range may belong to one
 * agent only and ranges never overlap, so an address names at most one agent (net/sources.ts).
 */
export function readAgent(c: Cursor, others: ReadonlyMap<string, AgentDef> = new Map()): AgentDef | undefined {
  const m = c.map(['name', 'token', 'sources', 'description'], ['name']);
  if (!m) return undefined;
  const name = m.get('name') && readName(m.get('name')!, 'agent');
  const tok = m.get('token');
  const token = tok ? readSource(tok) : null;
  const sources = readSources(m.get('sources'), others);
  if (!name || token === undefined) return undefined;
  return { name, token, sources, where: c.where() };
}

function readSources(c: Cursor | undefined, others: ReadonlyMap<string, AgentDef>): SourceRange[] {
  const out: SourceRange[] = [];
  for (const item of c?.listOrOne() ?? []) {
    const s = item.str();
    if (s === undefined) continue;
    let r: SourceRange;
    try {
      r = parseSourceRange(s);
    } catch (e) {
      item.fail((e as Error).message);
      continue;
    }
    const mine = out.find((o) => rangesOverlap(o, r));
    if (mine) {
      item.fail(`source ${r.cidr} overlaps ${mine.cidr} of the same agent; list each range once`);
      continue;
    }
    const theirs = [...others.values()].flatMap((a) => a.sources.map((o) => ({ a, o }))).find(({ o }) => rangesOverlap(o, r));
    if (theirs) {
      item.fail(`source ${r.cidr} overlaps ${theirs.o.cidr} of agent "${theirs.a.name}" (${theirs.a.where}); an address may identify one agent only`);
      continue;
    }
    out.push(r);
  }
  return out;
}

function readMethods(c: Cursor | undefined): ReadonlySet<string> | 'any' {
  if (!c) return 'any';
  const r = methodsFromClasses(c.strings() ?? [], { websocket: false });
  r.bad.forEach((b) => c.fail(b));
  return r.methods;
}

function readPaths(c: Cursor | undefined): PathPattern[] | null {
  if (!c) return null;
  const out: PathPattern[] = [];
  for (const item of c.listOrOne() ?? []) {
    const s = item.str();
    if (s === undefined) continue;
    try {
      out.push(compilePathGlob(s));
    } catch (e) {
      item.fail((e as Error).message);
    }
  }
  return out;
}

function readVariants(c: Cursor): SecretVariant[] {
  const out: SecretVariant[] = [];
  for (const item of c.list() ?? []) {
    const m = item.map(['methods', 'paths', 'secret'], ['secret']);
    if (!m) continue;
    const secret = m.get('secret') && readName(m.get('secret')!, 'secret');
    if (!m.has('methods') && !m.has('paths')) item.fail('a variant needs methods: or paths: (otherwise it would always apply)');
    if (secret) out.push({ methods: readMethods(m.get('methods')), paths: readPaths(m.get('paths')), secret });
  }
  return out;
}

function readAws(c: Cursor): AwsCredentialDef | undefined {
  const m = c.map(['access_key_id', 'session_token'], ['access_key_id']);
  if (!m) return undefined;
  const accessKeyId = m.get('access_key_id') && readSource(m.get('access_key_id')!);
  const st = m.get('session_token');
  const sessionToken = st ? readSource(st) : null;
  if (!accessKeyId || sessionToken === undefined) return undefined;
  return { accessKeyId, sessionToken };
}

function readBool(m: Map<string, Cursor>, key: string): boolean {
  return m.get(key)?.bool() ?? false;
}

export function readSecret(c: Cursor): SecretDef | undefined {
  const keys = ['name', 'from', 'hosts', 'headers', 'env', 'methods', 'paths', 'query', 'body', 'on_misuse', 'variants', 'aws', 'max_age', 'description'];
  const m = c.map(keys, ['name', 'from', 'hosts']);
  if (!m) return undefined;
  const name = m.get('name') && readName(m.get('name')!, 'secret');
  const source = m.get('from') && readSource(m.get('from')!);
  const hosts = m.get('hosts') && readHosts(m.get('hosts')!);
  if (hosts?.some((h) => h.kind === 'any')) m.get('hosts')!.fail('a secret cannot be bound to every host ("*"); name the hosts it belongs to');
  let headers: string[] = [];
  const hc = m.get('headers');
  if (hc) {
    headers = (hc.strings() ?? []).map((h) => h.toLowerCase());
    for (const h of headers) {
      if (!HEADER.test(h)) hc.fail(`"${h.slice(0, 40)}" is not a header name`);
      if (['host', 'proxy-authorization', 'content-length', 'transfer-encoding', 'connection'].includes(h)) hc.fail(`"${h}" cannot carry a secret`);
    }
  }
  const env: string[] = [];
  const ec = m.get('env');
  for (const item of ec?.listOrOne() ?? []) {
    const s = item.str();
    if (s !== undefined && !ENV_NAME.test(s)) item.fail(`"${s.slice(0, 40)}" is not an environment variable name`);
    else if (s !== undefined) env.push(s);
  }
  let onMisuse: SecretDef['onMisuse'] = 'deny';
  const om = m.get('on_misuse');
  if (om) {
    const s = om.str();
    if (s === 'deny' || s === 'revoke') onMisuse = s;
    else if (s !== undefined) om.fail(`on_misuse must be "deny" or "revoke", got "${s.slice(0, 20)}"`);
  }
  const variants = m.get('variants') ? readVariants(m.get('variants')!) : [];
  const aws = m.get('aws') ? readAws(m.get('aws')!) : null;
  const ma = m.get('max_age');
  const maxAgeMs = ma ? (readDuration(ma) ?? null) : null;
  if (!name || !source || !hosts || aws === undefined) return undefined;
  return {
    name,
    source,
    hosts,
    headers,
    env,
    methods: readMethods(m.get('methods')),
    paths: readPaths(m.get('paths')),
    query: readBool(m, 'query'),
    body: readBool(m, 'body'),
    onMisuse,
    variants,
    aws,
    maxAgeMs,
    where: c.where(),
  };
}
