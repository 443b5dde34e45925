/**
 * Compiled policy types. The engine (decide.ts) only ever sees these; YAML shapes live in
 * config/. Everything here is immutable after compilation: a reload builds a new Policy and
 * swaps the reference, so a request that started under one policy finishes under it.
 */
import type { AddressException } from '../net/exceptions.js';
import type { ErrorCode } from '../core/errors.js';

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
}

/** Where a source was written, for messages: "rules/default.yaml:12". */
export type Where = string;

export type SecretSource =
  | { kind: 'env'; name: string }
  | { kind: 'file'; path: string };

export interface AgentDef {
  name: string;
  /** Source of the proxy credential; null means derived from the key file (turret env prints it). */
  token: SecretSource | null;
  where: Where;
}

export interface SecretDef {
  name: string;
  source: SecretSource;
  /** Hosts this secret may be sent to. */
  hosts: HostPattern[];
  /** Extra header names (lower case) where a handle for this secret is replaced. */
  headers: string[];
  /** Variable name an agent's environment gives the handle (turret env). */
  env: string | null;
  where: Where;
}

export interface Rule {
  /** file:line — the stable identity shown in audit records, denials and explain. */
  id: string;
  name: string;
  agents: ReadonlySet<string> | 'any';
  methods: ReadonlySet<string> | 'any';
  /** Method classes as written, for explain ("read", "write", "POST"). */
  methodSource: string[];
  hosts: HostPattern[];
  /** null = any path. */
  paths: PathPattern[] | null;
  schemes: ReadonlySet<Scheme>;
  /** Non-public addresses this rule's hosts may resolve to. */
  addressExceptions: AddressException[];
}

export interface Settings {
  /** Extra CA bundle (PEM) trusted for upstream TLS, beside the system roots. */
  upstreamCaFile: string | null;
  /** Operator-pinned name → addresses (bypasses DNS; the addresses are still classified). */
  dnsHosts: Record<string, string[]>;
}

export interface Policy {
  files: string[];
  agents: ReadonlyMap<string, AgentDef>;
  secrets: ReadonlyMap<string, SecretDef>;
  rules: readonly Rule[];
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
}

export interface Decision {
  allow: boolean;
  rule: Rule | null;
  /** Fixed-phrase reason, secret-free, shown to the agent. */
  reason: string;
  /** For denials, the error code reported. */
  code: ErrorCode | null;
}
