/**
 * The canonical decision record: one per request decided by the proxy, plus one when a tunnel
 * opens and one when it closes. Every sink writes exactly the fields listed here, in this order,
 * so a record can never carry a header, a body or a query value by accident (a caller that puts
 * extra properties on the object sees them dropped by `normalizeRecord`).
 *
 * Outcomes, in the order a request can pass through them:
 * - `denied`    policy refused it (a 4xx with an X-Turret-Error code)
 * - `allowed`   policy allowed it; the final result is written as `completed` or `failed`
 * - `completed` the upstream answered and the response was relayed
 * - `failed`    allowed, but the network or the proxy failed (a 5xx code)
 * - `aborted`   cut short by the client (client_closed) or by the drain deadline at shutdown
 */

import { JsonOut } from './json-out.js';

export type AuditEvent = 'request' | 'tunnel_open' | 'tunnel_close';
export type AuditOutcome = 'denied' | 'allowed' | 'completed' | 'failed' | 'aborted';

export const AUDIT_EVENTS: readonly AuditEvent[] = ['request', 'tunnel_open', 'tunnel_close'];
export const AUDIT_OUTCOMES: readonly AuditOutcome[] = ['denied', 'allowed', 'completed', 'failed', 'aborted'];

export interface AuditRecord {
  time: string;
  event: AuditEvent;
  outcome: AuditOutcome;
  agent: string | null;
  method?: string;
  scheme?: 'http' | 'https';
  host?: string;
  port?: number;
  /** Path and query with every query VALUE removed (`/x?a=&b=`); see stripQueryValues. */
  path?: string;
  rule?: string | null;
  reason?: string;
  /** The X-Turret-Error code when the proxy refused or failed. */
  code?: string;
  status?: number;
  bytes_in?: number;
  bytes_out?: number;
  duration_ms?: number;
  /** Names of the secrets injected, never values. */
  secrets?: string[];
  /** Secret name → short fingerprint, so an operator can tell which version of a secret was used. */
  fingerprints?: Record<string, string>;
  redactions?: number;
  /** Something an operator should look at: `secret_in_request` (an agent sent a secret's value). */
  alert?: string;
  /** The secret the alert is about (its name, never its value). */
  alert_secret?: string;
  client?: string;
  tunnel_id?: string;
  request_id?: string;
  /** An `action: ask` request: how an operator (or the clock) decided it. */
  approval?: ApprovalNote;
}

export interface ApprovalNote {
  id: string;
  decision: 'allowed_once' | 'allowed_for' | 'denied' | 'timed_out' | 'cancelled';
  /** Who decided ("console", "cli", …) and when (RFC 3339); absent for timed_out/cancelled. */
  by?: string;
  at?: string;
  /** allowed_for: the instant the added rule entry expires. */
  until?: string;
  /** denied: the operator's message to the agent. */
  message?: string;
}

export function isAuditOutcome(s: string): s is AuditOutcome {
  return (AUDIT_OUTCOMES as readonly string[]).includes(s);
}

/**
 * Removes every query value and the fragment, keeping the parameter names and their order:
 * `/search?q=secret&page=2#top` → `/search?q=&page=`. A parameter without `=` keeps its name
 * as it is (there is no value to remove). Idempotent, so sinks can apply it again defensively.
 * Names are kept because operators need them to understand a request; values are where tokens,
 * e-mail addresses and handles travel.
 */
export function stripQueryValues(pathWithQuery: string): string {
  const hash = pathWithQuery.indexOf('#');
  const noFragment = hash === -1 ? pathWithQuery : pathWithQuery.slice(0, hash);
  const q = noFragment.indexOf('?');
  if (q === -1) return noFragment;
  const query = noFragment.slice(q + 1);
  const stripped = query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq === -1 ? pair : pair.slice(0, eq + 1);
    })
    .join('&');
  return `${noFragment.slice(0, q)}?${stripped}`;
}

/** Longest string kept in any field; an agent controls paths and hosts and must not bloat the log. */
export const MAX_FIELD_CHARS = 4096;

function cap(s: string): string {
  return s.length <= MAX_FIELD_CHARS ? s : `${s.slice(0, MAX_FIELD_CHARS)}…[truncated]`;
}

function num(n: number | undefined): number | undefined {
  return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
}

function str(s: string | undefined): string | undefined {
  return typeof s === 'string' ? cap(s) : undefined;
}

/**
 * The own enumerable string-valued fields of `o`, names and values capped, as Object.fromEntries
 * of Object.entries would make them, without the two arrays per call (one record per request).
 * A name like `__proto__` is defined as data, never set as a prototype.
 */
function stringFields(o: object): Record<string, string> {
  const from = o as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const k in from) {
    const v = from[k];
    if (!Object.hasOwn(from, k) || typeof v !== 'string') continue;
    const name = cap(k);
    if (name === '__proto__') Object.defineProperty(out, name, { value: cap(v), enumerable: true, writable: true, configurable: true });
    else out[name] = cap(v);
  }
  return out;
}

/**
 * Every known field of `rec`, normalised, in the canonical order, as one object literal: a field
 * that is absent holds undefined, which JSON.stringify leaves out, so
 * `JSON.stringify(canonicalFields(r))` is byte for byte `JSON.stringify(normalizeRecord(r))`.
 * One literal keeps one hidden class with fast properties; the copy normalizeRecord builds field
 * by field fell into dictionary mode past ~18 fields (a record with `secrets` and
 * `fingerprints`), and JSON.stringify took its slow path, +1.5 to 2 µs per record
 * (docs/benchmarks.md, "Sixth pass"). formatChainLine serialises this.
 */
export function canonicalFields(rec: AuditRecord): Record<keyof AuditRecord, unknown> {
  return {
    time: String(rec.time),
    event: rec.event,
    outcome: rec.outcome,
    agent: typeof rec.agent === 'string' ? cap(rec.agent) : null,
    method: str(rec.method),
    scheme: rec.scheme === 'http' || rec.scheme === 'https' ? rec.scheme : undefined,
    host: str(rec.host),
    port: num(rec.port),
    path: typeof rec.path === 'string' ? cap(stripQueryValues(rec.path)) : undefined,
    rule: rec.rule === null ? null : str(rec.rule),
    reason: str(rec.reason),
    code: str(rec.code),
    status: num(rec.status),
    bytes_in: num(rec.bytes_in),
    bytes_out: num(rec.bytes_out),
    duration_ms: num(rec.duration_ms),
    secrets: canonicalSecrets(rec.secrets),
    fingerprints: canonicalFingerprints(rec.fingerprints),
    redactions: num(rec.redactions),
    alert: str(rec.alert),
    alert_secret: str(rec.alert_secret),
    client: str(rec.client),
    tunnel_id: str(rec.tunnel_id),
    request_id: str(rec.request_id),
    approval: canonicalApproval(rec.approval),
  };
}

function canonicalSecrets(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string').map(cap) : undefined;
}

function canonicalFingerprints(v: unknown): Record<string, string> | undefined {
  return v !== undefined && v !== null && typeof v === 'object' ? stringFields(v) : undefined;
}

function canonicalApproval(v: unknown): ApprovalNote | undefined {
  const a = v as ApprovalNote | undefined;
  if (!a || typeof a !== 'object' || typeof a.id !== 'string') return undefined;
  const approval: ApprovalNote = { id: cap(a.id), decision: a.decision };
  for (const k of ['by', 'at', 'until', 'message'] as const) if (typeof a[k] === 'string') approval[k] = cap(a[k]);
  return approval;
}

/**
 * The fields Turret makes itself, so nothing an agent or upstream sends can reach them: `time`
 * (toISOString), `event`, `outcome`, `scheme` (fixed words, and normalizeRecord drops any other
 * scheme), `code` (the error table, core/errors.ts), `client` (the socket's own address and port),
 * `tunnel_id` and `request_id` (random hex). The record scrub (proxy/record-scrub.ts) copies
 * these as they are and scrubs every other field: the list names what is skipped, not what is
 * scanned.
 */
export const TURRET_MADE_FIELDS: ReadonlySet<string> = new Set(['time', 'event', 'outcome', 'scheme', 'code', 'client', 'tunnel_id', 'request_id']);

/**
 * What the scrubbed copy holds for a string field: `text(v)` for a string (`v` itself for a field
 * Turret makes), `nested` for an object (scrubJson turns a Date or a Buffer into a string), and no
 * string for anything else.
 */
function scrubbedString(v: unknown, text: ((s: string) => string) | null, nested: NestedScrub, outside: (s: string) => string): string | undefined {
  if (typeof v === 'string') return text === null ? v : text(v);
  if (typeof v !== 'object' || v === null) return undefined;
  const s = nested(v, outside);
  return typeof s === 'string' ? s : undefined;
}

/** `key` and the capped scrubbed string, or nothing when the copy holds no string there (canonicalFields' str()). */
function strField(o: JsonOut, key: string, v: unknown, text: ((s: string) => string) | null, nested: NestedScrub, outside: (s: string) => string): void {
  // The common case first, without the call.
  const s = typeof v === 'string' ? (text === null ? v : text(v)) : scrubbedString(v, text, nested, outside);
  if (s === undefined) return;
  o.ascii(key);
  o.quoted(cap(s));
}

function numField(o: JsonOut, key: string, v: unknown): void {
  // A finite number's JSON is its String() (-0 included: both "0").
  if (typeof v !== 'number' || !Number.isFinite(v)) return;
  o.ascii(key);
  o.number(v);
}

/**
 * What a nested field (secrets, fingerprints, approval) becomes under the record scrub: the value
 * scrubRecordText (proxy/record-scrub.ts) puts in its copy for an object `v`.
 */
export type NestedScrub = (v: unknown, text: (s: string) => string) => unknown;

/**
 * chainBody(scrubbed) for the record `scrubbed` the record scrub makes of `rec` (`text` over every
 * string field outside TURRET_MADE_FIELDS, `nested` over objects), byte for byte, in one pass,
 * written as UTF-8 into `o` (json-out.ts): neither the scrubbed copy nor the canonical copy of the
 * record is built, nor the body as a string; JSON.stringify runs only for the nested fields and
 * for strings that need escaping (docs/benchmarks.md, "Twelfth pass: audit and decision" and
 * "Thirteenth pass → auditfast2"). Only the fields a record writes are scrubbed (the copy
 * scrubbed fields normalizeRecord then dropped). False, with nothing written, for a record whose
 * `time`, `event` or `outcome` is not a string, or that is not an object literal (not one Turret
 * makes): the caller serialises the scrubbed copy then.
 */
export function scrubbedChainBodyInto(rec: AuditRecord, text: (s: string) => string, nested: NestedScrub, o: JsonOut): boolean {
  const { time, event, outcome, agent, scheme, rule } = rec;
  // An object literal's fields are its own (the scrubbed copy keeps own fields only).
  if (
    Object.getPrototypeOf(rec) !== Object.prototype ||
    typeof time !== 'string' ||
    (event !== undefined && typeof event !== 'string') ||
    (outcome !== undefined && typeof outcome !== 'string')
  )
    return false;
  const n = nested;
  o.ascii('{"time":');
  o.quoted(time);
  if (event !== undefined) {
    o.ascii(',"event":');
    o.quoted(event);
  }
  if (outcome !== undefined) {
    o.ascii(',"outcome":');
    o.quoted(outcome);
  }
  const ag = scrubbedString(agent, text, n, text);
  if (ag === undefined) o.ascii(',"agent":null');
  else {
    o.ascii(',"agent":');
    o.quoted(cap(ag));
  }
  strField(o, ',"method":', rec.method, text, n, text);
  const sc = typeof scheme === 'string' ? scheme : scrubbedString(scheme, null, n, text);
  if (sc === 'http') o.ascii(',"scheme":"http"');
  else if (sc === 'https') o.ascii(',"scheme":"https"');
  strField(o, ',"host":', rec.host, text, n, text);
  numField(o, ',"port":', rec.port);
  const p = scrubbedString(rec.path, text, n, text);
  if (p !== undefined) {
    o.ascii(',"path":');
    o.quoted(cap(stripQueryValues(p)));
  }
  if (rule === null) o.ascii(',"rule":null');
  else strField(o, ',"rule":', rule, text, n, text);
  strField(o, ',"reason":', rec.reason, text, n, text);
  strField(o, ',"code":', rec.code, null, n, text);
  numField(o, ',"status":', rec.status);
  numField(o, ',"bytes_in":', rec.bytes_in);
  numField(o, ',"bytes_out":', rec.bytes_out);
  numField(o, ',"duration_ms":', rec.duration_ms);
  const { secrets, fingerprints, approval } = rec;
  if (Array.isArray(secrets)) {
    const l = canonicalSecrets(nested(secrets, text));
    if (l !== undefined) {
      o.ascii(',"secrets":');
      o.text(JSON.stringify(l));
    }
  }
  if (fingerprints !== undefined && fingerprints !== null && typeof fingerprints === 'object') {
    const f = canonicalFingerprints(nested(fingerprints, text));
    if (f !== undefined) {
      o.ascii(',"fingerprints":');
      o.text(JSON.stringify(f));
    }
  }
  numField(o, ',"redactions":', rec.redactions);
  strField(o, ',"alert":', rec.alert, text, n, text);
  strField(o, ',"alert_secret":', rec.alert_secret, text, n, text);
  strField(o, ',"client":', rec.client, null, n, text);
  strField(o, ',"tunnel_id":', rec.tunnel_id, null, n, text);
  strField(o, ',"request_id":', rec.request_id, null, n, text);
  if (approval !== undefined && approval !== null && typeof approval === 'object') {
    const a = canonicalApproval(nested(approval, text));
    if (a !== undefined) {
      o.ascii(',"approval":');
      o.text(JSON.stringify(a));
    }
  }
  o.ascii('}');
  return true;
}

/** scrubbedChainBodyInto as a string (null where it writes nothing): tests, and callers without a JsonOut. */
export function scrubbedChainBody(rec: AuditRecord, text: (s: string) => string, nested: NestedScrub): string | null {
  const o = new JsonOut();
  return scrubbedChainBodyInto(rec, text, nested, o) ? o.toString() : null;
}

/**
 * Returns a copy holding only the known fields, in the canonical order, with undefined fields
 * dropped, query values stripped from `path`, long strings capped and non-finite numbers
 * removed. The key order is what every sink writes, so two equal records serialise identically.
 */
export function normalizeRecord(rec: AuditRecord): AuditRecord {
  const all = canonicalFields(rec);
  const out: Record<string, unknown> = {};
  for (const k in all) {
    const v = all[k as keyof AuditRecord];
    if (v !== undefined) out[k] = v;
  }
  return out as unknown as AuditRecord;
}
