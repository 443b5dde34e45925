/**
 * The top-level `scrub:` section of a rule file (one file only, like `settings:`):
 *
 *   scrub:
 *     content_types: all                  # or a list: [text/*, application/json, ...]
 *     max_body_scan: 1073741824           # bytes of each decoded body scanned; absent = all
 *     generic: false                      # gitleaks' keyword-context rules (noisy, opt-in)
 *     patterns:
 *       - { id: acme-token, regex: "acme_[A-Za-z0-9]{32}", keywords: [acme_] }
 *     oauth_capture:
 *       - name: acme-oauth
 *         token_url: https://auth.acme.test/oauth/token
 *         hosts: [api.acme.test]
 *
 * Every operator pattern is compiled here with the scrubber's own compiler, so a pattern that
 * RE2 cannot run (lookahead, backreference, empty match …) is a load error at its file:line:col,
 * never a runtime failure. See docs/scrubbing.md.
 */
import { normaliseHost } from '../net/host.js';
import type { OAuthCaptureDef, ScrubPatternDef, ScrubSettings } from '../policy/types.js';
import { BUILTIN_PATTERNS, GENERIC_PATTERNS, compilePatterns, type PatternSpec } from '../scrub/patterns.js';
import { readDuration, readHosts, readName } from './common.js';
import type { Cursor } from './yaml.js';

/** Scan everything (binary too: the scrubber is byte-safe, and a token in a tarball is still a
 * token), whole bodies, default patterns only. */
export const DEFAULT_SCRUB_SETTINGS: ScrubSettings = Object.freeze({
  contentTypes: 'all',
  maxBodyScan: null,
  generic: false,
  patterns: [],
  oauthCapture: [],
  where: null,
});

const MEDIA = /^[a-z0-9!#$&^_.+-]+\/(\*|[a-z0-9!#$&^_.+-]+)$/;
const RESERVED = new Set([...BUILTIN_PATTERNS, ...GENERIC_PATTERNS].map((p) => p.id));
const DEFAULT_OAUTH_TTL_MS = 3_600_000;

/** Read one `scrub:` section; `previous` is the section another file already gave. */
export function readScrub(c: Cursor, previous: ScrubSettings | undefined): ScrubSettings | undefined {
  if (previous?.where) return c.fail(`scrub is already given in ${previous.where}; keep it in one file`);
  const m = c.map(['content_types', 'max_body_scan', 'generic', 'patterns', 'oauth_capture']);
  if (!m) return undefined;
  const out: ScrubSettings = { ...DEFAULT_SCRUB_SETTINGS, where: c.where() };
  const ct = m.get('content_types');
  if (ct) {
    const list = ct.strings() ?? [];
    if (list.length === 1 && list[0] === 'all') out.contentTypes = 'all';
    else {
      const types: string[] = [];
      for (const t of list) {
        const v = t.trim().toLowerCase();
        if (!MEDIA.test(v) || v.startsWith('*')) ct.fail(`"${t.slice(0, 60)}" is not a media type (like text/* or application/json), nor "all"`);
        else types.push(v);
      }
      if (list.length === 0) ct.fail('lists no media type (use "all" to scan every body)');
      out.contentTypes = types;
    }
  }
  const mb = m.get('max_body_scan');
  if (mb) out.maxBodyScan = mb.int(4096, Number.MAX_SAFE_INTEGER) ?? null;
  const g = m.get('generic');
  if (g) out.generic = g.bool() ?? false;
  const ps = m.get('patterns');
  if (ps) out.patterns = readPatterns(ps);
  const oc = m.get('oauth_capture');
  if (oc) out.oauthCapture = (oc.list() ?? []).map(readOAuth).filter((x): x is OAuthCaptureDef => x !== undefined);
  const names = new Set<string>();
  for (const o of out.oauthCapture) {
    if (names.has(o.name)) oc?.fail(`oauth_capture name "${o.name}" is used twice`);
    names.add(o.name);
  }
  return out;
}

function readPatterns(c: Cursor): ScrubPatternDef[] {
  const out: ScrubPatternDef[] = [];
  const ids = new Set<string>();
  for (const pc of c.list() ?? []) {
    const m = pc.map(['id', 'regex', 'flags', 'secret_group', 'min_entropy', 'keywords'], ['id', 'regex']);
    if (!m) continue;
    const id = m.get('id')?.str();
    const regex = m.get('regex')?.str();
    if (id === undefined || regex === undefined) continue;
    const def: ScrubPatternDef = { id, regex };
    const flags = m.get('flags')?.str({ nonEmpty: false });
    if (flags !== undefined) def.flags = flags;
    const sg = m.get('secret_group')?.int(0, 99);
    if (sg !== undefined) def.secretGroup = sg;
    const me = m.get('min_entropy');
    if (me) {
      const v = (me.node as { value?: unknown }).value;
      if (typeof v !== 'number' || !(v >= 0 && v <= 8)) me.fail('expected a number within 0..8 (bits per byte)');
      else def.minEntropy = v;
    }
    const kw = m.get('keywords')?.strings();
    if (kw) def.keywords = kw;
    if (RESERVED.has(id)) {
      m.get('id')?.fail(`"${id}" is a built-in pattern id; choose another`);
      continue;
    }
    if (ids.has(id)) {
      m.get('id')?.fail(`pattern id "${id}" is used twice`);
      continue;
    }
    ids.add(id);
    // Compile now: the same compiler the scrubber uses, so what loads is what runs.
    try {
      compilePatterns([toSpec(def)]);
    } catch (e) {
      const msg = (e as Error).message.replace(/^pattern [^:]*: /, '');
      (m.get('regex') ?? pc).fail(`pattern "${id}" cannot be used: ${msg}`);
      continue;
    }
    out.push(def);
  }
  return out;
}

export function toSpec(d: ScrubPatternDef): PatternSpec {
  return {
    id: d.id,
    regex: d.regex,
    ...(d.flags !== undefined ? { flags: d.flags } : {}),
    ...(d.secretGroup !== undefined ? { secretGroup: d.secretGroup } : {}),
    ...(d.minEntropy !== undefined ? { minEntropy: d.minEntropy } : {}),
    ...(d.keywords !== undefined ? { keywords: d.keywords } : {}),
  };
}

function readOAuth(c: Cursor): OAuthCaptureDef | undefined {
  const m = c.map(['name', 'token_url', 'hosts', 'ttl'], ['name', 'token_url', 'hosts']);
  if (!m) return undefined;
  const nameC = m.get('name');
  const name = nameC ? readName(nameC, 'oauth_capture') : undefined;
  const urlC = m.get('token_url');
  const raw = urlC?.str();
  const hostsC = m.get('hosts');
  const hosts = hostsC ? readHosts(hostsC) : undefined;
  const ttlC = m.get('ttl');
  const ttlMs = ttlC ? readDuration(ttlC) : DEFAULT_OAUTH_TTL_MS;
  if (name === undefined || raw === undefined || !hosts || ttlMs === undefined || !urlC) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return urlC.fail(`"${raw.slice(0, 80)}" is not an absolute URL`);
  }
  if (url.protocol !== 'https:') return urlC.fail('token_url must be https (tokens over plain HTTP would be readable on the wire)');
  if (url.search || url.hash || url.username || url.password) return urlC.fail('token_url is scheme://host[:port]/path, without query, fragment or credentials');
  let host: string;
  try {
    host = normaliseHost(url.hostname.replace(/^\[|\]$/g, '')).host;
  } catch (e) {
    return urlC.fail(`token_url host: ${(e as Error).message}`);
  }
  return { name, host, port: url.port ? Number(url.port) : null, path: url.pathname, hosts, ttlMs, where: c.where() };
}
