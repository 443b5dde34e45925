/**
 * Compiled policy types. The engine (decide.ts) only ever sees these; YAML shapes live in
 * config/. Everything here is immutable after compilation: a reload builds a new Policy and
 * swaps the reference, so a request that started under one policy finishes under it.
 */
import type { AddressException } from '../net/exceptions.js';
import type { SourceRange } from '../net/sources.js';
import type { ErrorCode } from '../core/errors.js';
import type { BodySchema, JsonRpcSpec, McpSpec } from './capability.js';

export type Scheme = 'http' | 'https';

export interface HostPattern {
  /** As written (for explain and messages). */
  source: string;
  kind: 'any' | 'exact' | 'suffix';
  /** Canonical (punycode) host for exact, the suffix without "*." for suffix. */
  host: string;
  /** null = the scheme's default port (80/443); 'any' = every port. */
  port: number | 'any' | null;
}

export interface PathPattern {
  source: string;
  test(normalisedPath: string): boolean;
  /** The same pattern, case-folded, against a case-folded path (policy/fold.ts; deny rules). */
  testFolded(foldedPath: string): boolean;
}

/** Where a source was written, for messages: "rules/default.yaml:12". */
export type Where = string;

export type SecretSource =
  | { kind: 'env'; name: string }
  | { kind: 'file'; path: string }
  /** argv run without a shell; stdout (one trailing newline trimmed) is the value. */
  | { kind: 'command'; argv: string[]; timeoutMs: number; refreshMs: number }
  /** An entry of the encrypted store (`turret secret set NAME`). */
  | { kind: 'store'; name: string };

/** A narrower secret a handle turns into for some methods/paths (e.g. a write token for POSTs). */
export interface SecretVariant {
  methods: ReadonlySet<string> | 'any';
  paths: PathPattern[] | null;
  secret: string;
}

/** AWS SigV4 re-signing: `source` of the SecretDef is the secret access key. */
export interface AwsCredentialDef {
  accessKeyId: SecretSource;
  sessionToken: SecretSource | null;
}

export interface AgentDef {
  name: string;
  /** Source of the proxy credential; null means derived from the key file (turret env prints it). */
  token: SecretSource | null;
  /** Client address ranges that identify this agent without a credential (net/sources.ts); [] = none. */
  sources: readonly SourceRange[];
  where: Where;
}

export interface SecretDef {
  name: string;
  source: SecretSource;
  /** Hosts this secret may be sent to. */
  hosts: HostPattern[];
  /** Extra header names (lower case) where a handle for this secret is replaced. */
  headers: string[];
  /** Variable names an agent's environment gives the handle (turret env / run). */
  env: string[];
  /** Methods and paths the secret may be used for ('any' / null = no limit). */
  methods: ReadonlySet<string> | 'any';
  paths: PathPattern[] | null;
  /** Opt-in injection into query parameter values and request bodies. */
  query: boolean;
  body: boolean;
  /** What a misuse does besides the 403: 'revoke' revokes the handle at once. */
  onMisuse: 'deny' | 'revoke';
  /** First matching variant's secret is injected instead (its own hosts and scope still apply). */
  variants: SecretVariant[];
  aws: AwsCredentialDef | null;
  /** Optional: a value older than this is flagged (console, turret_secret_stale metric). */
  maxAgeMs: number | null;
  where: Where;
}

/** Protocol families whose POSTs can be reads (and whose GETs can be writes); see catalog.ts. */
export type CatalogEntry = 'git' | 'graphql' | 'mcp' | 'jsonrpc';

/** A condition on one query key; every condition of a rule must hold. */
export interface QueryCondition {
  key: string;
  /** As written, for explain: "service=git-upload-pack", "token absent", "q ~ ^[a-z]+$". */
  source: string;
  kind: 'present' | 'absent' | 'equals' | 'matches';
  /** For equals/matches: must hold for every value the key has (a second value cannot sneak by). */
  test: (value: string) => boolean;
}

/** Token bucket: `requests` per `perMs`, bursting up to `burst`. */
export interface RateLimitSpec {
  requests: number;
  perMs: number;
  burst: number;
  /** As written, for messages: "60 per 1m, burst 10". */
  source: string;
}

export interface Rule {
  /** file:line — the stable identity shown in audit records, denials and explain. */
  id: string;
  name: string;
  /** Deny rules win over allow rules wherever both match (docs/rules.md, precedence). */
  action: 'allow' | 'deny' | 'ask';
  /** ask rules: how long a request waits for an operator (ms). */
  askTimeoutMs: number | null;
  agents: ReadonlySet<string> | 'any';
  methods: ReadonlySet<string> | 'any';
  /**
   * The rule names the read / write class (read-shaped and write-shaped requests use these) and
   * the websocket class (the only way besides `any` to allow a WebSocket upgrade).
   */
  classes: { read: boolean; write: boolean; websocket: boolean };
  /** Method classes as written, for explain ("read", "write", "POST"). */
  methodSource: string[];
  hosts: HostPattern[];
  /** null = any path. Globs and regexes (path_regex), any one matching is enough. */
  paths: PathPattern[] | null;
  query: QueryCondition[];
  schemes: ReadonlySet<Scheme>;
  /** Writes over plain HTTP: only when the rule lists `http` in `schemes:` explicitly. */
  plainHttpWrites: boolean;
  catalog: ReadonlySet<CatalogEntry>;
  /** The rule stops matching at this instant (ms since epoch); null = never. */
  until: number | null;
  rateLimit: RateLimitSpec | null;
  /** Non-public addresses this rule's hosts may resolve to. */
  addressExceptions: AddressException[];
  /** For rules of a shared policy: "policy github-read-only, included at rules/a.yaml:12". */
  origin: string | null;
  /** Shown in denials by a deny rule (it tells the agent why). */
  description: string | null;
  /**
   * CONNECT to these hosts is relayed as an opaque TCP tunnel instead of intercepted (for clients
   * that pin certificates). Turret then sees no request: no per-request decision, no injection,
   * no scrubbing. Only allow rules with `methods: [any]` and no path/query/catalog conditions.
   */
  passthrough: boolean;
  /** The JSON body must validate against this schema (capability.ts); null = not checked. */
  bodySchema: BodySchema | null;
  /** `mcp:` (with `catalog: [mcp]`): tools/call allowed by tool name, argument schemas. */
  mcp: McpSpec | null;
  /** `jsonrpc:` (with `catalog: [jsonrpc]`): allowed JSON-RPC method names. */
  jsonrpc: JsonRpcSpec | null;
  /** Session labels this rule adds when it allows a request (taint.ts). */
  taints: readonly string[];
  /** The rule does not apply while the session carries any of these labels. */
  unlessTainted: readonly string[];
}

/** A session label and the request that added it (for explain and denials). */
export interface TaintMark {
  label: string;
  /** request_id of the exchange that added it, and its rule id. */
  request: string;
  rule: string;
  at: number;
  expires: number;
}

/** A per-agent rate limit (`limits:`); every agent it names gets its own bucket. */
export interface AgentLimit {
  id: string;
  agents: ReadonlySet<string> | 'any';
  spec: RateLimitSpec;
}

/** An `examples:` entry: a request and the decision the operator expects for it. */
export interface Example {
  where: Where;
  /** file, line, col of the entry, for problems. */
  at: { file: string; line: number; col: number };
  request: RequestFacts;
  /** As written, for messages. */
  text: string;
  expect: 'allow' | 'deny' | 'ask';
  /** Optional: the deciding rule's name and the denial code. */
  rule: string | null;
  code: string | null;
}

export interface Settings {
  /** Extra CA bundle trusted for upstream TLS, beside the system roots: the file as written... */
  upstreamCaFile: string | null;
  /** ...and its PEM text, read and checked by the loader (so `rules check` and `start` agree). */
  upstreamCa: string | null;
  /** Operator-pinned name → addresses (bypasses DNS; the addresses are still classified). */
  dnsHosts: Record<string, string[]>;
  /** DNS servers ("IP[:port]") asked instead of the system's; absent = the system's. */
  dnsServers?: string[];
  /** How long a session label (`taints:`) lasts, in ms; default 1 h. */
  taintTtlMs?: number;
  /** The top-level `scrub:` section (config/scrub.ts); absent = DEFAULT_SCRUB_SETTINGS there. */
  scrub?: ScrubSettings;
  /** `shared_state:` (config/shared-state.ts): Redis for limits and revocations across replicas; absent = this process only. */
  sharedState?: SharedStateSettings;
}

/** Where replicas keep the state they must agree on (docs/operations.md, "Shared state"). */
export interface SharedStateSettings {
  /** redis:// or rediss:// host, port and database; never a password (config refuses one). */
  url: string;
  /** PEM CA bundle that signs the Redis server certificate (rediss:// only); absent = system roots. */
  caFile: string | null;
  username: string | null;
  /** Where the Redis password comes from (never a value in the rule file). */
  password: SecretSource | null;
  /** Prefix of every key and channel, so several deployments can share one Redis. */
  keyPrefix: string;
  /** How long one Redis command may take before it counts as a failure. */
  timeoutMs: number;
}

/** An operator token pattern (`scrub.patterns`), validated by compiling it at load time. */
export interface ScrubPatternDef {
  id: string;
  regex: string;
  flags?: string;
  secretGroup?: number;
  minEntropy?: number;
  keywords?: string[];
}

/** OAuth token capture (`scrub.oauth_capture`): tokens in this endpoint's JSON answer become
 * handles; the real tokens are kept in memory and injected toward `hosts` only. */
export interface OAuthCaptureDef {
  /** Name of the dynamic secrets: `<name>.access_token`, `<name>.refresh_token`. */
  name: string;
  /** Canonical host and exact path (no query) of the token endpoint. */
  host: string;
  port: number | null;
  path: string;
  /** Hosts the captured tokens are bound to. */
  hosts: HostPattern[];
  /** Handle lifetime when the answer has no expires_in (ms). */
  ttlMs: number;
  where: Where;
}

export interface ScrubSettings {
  /** Media types whose bodies are scanned: 'all', or "type/subtype" / "type/*" entries. */
  contentTypes: 'all' | readonly string[];
  /** Bytes of each (decoded) body scanned; the rest passes unscanned. null = the whole body. */
  maxBodyScan: number | null;
  /** Also run gitleaks' keyword-context rules (GENERIC_PATTERNS); off by default (noisy). */
  generic: boolean;
  patterns: readonly ScrubPatternDef[];
  oauthCapture: readonly OAuthCaptureDef[];
  where: Where | null;
}

export interface Policy {
  files: string[];
  agents: ReadonlyMap<string, AgentDef>;
  secrets: ReadonlyMap<string, SecretDef>;
  rules: readonly Rule[];
  limits: readonly AgentLimit[];
  examples: readonly Example[];
  settings: Settings;
  loadedAt: Date;
}

export interface RequestFacts {
  agent: string;
  method: string;
  scheme: Scheme;
  host: string;
  port: number;
  /** Path and query as received (normalised by decide before matching). */
  path: string;
  /**
   * The request asks to switch to WebSocket (an `Upgrade` header naming websocket). Only rules
   * with the `websocket` method class (or `any`) allow it (docs/rules.md, Methods).
   */
  websocket?: boolean;
  /** Lower-case media type without parameters, when the request has a body. */
  contentType?: string | null;
  /**
   * The first bytes of the body (UTF-8), only when the pipeline peeked at it for a catalog entry
   * that needs it (GraphQL over POST). null or absent: not peeked.
   */
  body?: string | null;
  /** Labels the agent's session carries now (taint.ts); absent = none. */
  taints?: ReadonlyMap<string, TaintMark>;
}

export interface Decision {
  allow: boolean;
  rule: Rule | null;
  /** Fixed-phrase reason, secret-free, shown to the agent. */
  reason: string;
  /** For denials, the error code reported. */
  code: ErrorCode | null;
  /** How the request was classified ("git fetch", "GraphQL mutation" …), when a catalog entry applied. */
  shape?: string | null;
  /** Set when no allow rule matched but an `action: ask` rule did: an operator decides (approvals). */
  ask?: Rule | null;
  /** decideTunnel only: relay this tunnel opaquely instead of intercepting it (Rule.passthrough). */
  passthrough?: boolean;
}
