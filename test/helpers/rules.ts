/**
 * The one place tests and benchmarks write Turret rule files. A file is given as an object of
 * Turret's own keys (agents, secrets, rules, limits, settings, scrub) and written as YAML; what
 * every test used to copy by hand is one field: `local` names the test host names that resolve to
 * this machine (settings.dns_hosts) and, unless `testCa: false`, the committed test CA is trusted
 * for upstream TLS (settings.upstream_ca_file). Text is written as it is, for tests whose subject
 * is the YAML itself (errors with file:line, shipped files, odd spellings).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { UPSTREAM_CA_FILE } from './upstream.js';

/** `unsafe_addresses` of a rule whose test upstream listens on loopback. */
export const LOOPBACK = ['127.0.0.1/32'];

export interface Agent {
  name: string;
  token?: { env: string };
  sources?: string[];
  [key: string]: unknown;
}

export interface Secret {
  name: string;
  from: { env: string } | { file: string } | { store: string } | { value: string };
  hosts: string[];
  env?: string | string[];
  headers?: string[];
  [key: string]: unknown;
}

export interface Rule {
  name?: string;
  include?: string;
  agents?: string[];
  action?: 'allow' | 'deny' | 'ask';
  /** A list, or one method or class as a scalar (`methods: any`). */
  methods?: string | string[];
  hosts?: string[];
  schemes?: string[];
  paths?: string[];
  unsafe_addresses?: string[];
  [key: string]: unknown;
}

export interface RuleFile {
  /** An agent by name alone is `{ name }`. */
  agents?: Array<string | Agent>;
  secrets?: Secret[];
  rules?: Rule[];
  limits?: Array<Record<string, unknown>>;
  settings?: Record<string, unknown>;
  scrub?: Record<string, unknown>;
  /** Test host names and the address each resolves to: a list means 127.0.0.1 for all. */
  local?: string[] | Record<string, string>;
  /** Trust the committed test CA for upstream TLS (settings.upstream_ca_file); default true. */
  testCa?: boolean;
}

/** A rules directory's files by name: an object becomes YAML, a string is written verbatim. */
export type RuleFiles = Record<string, string | RuleFile>;

/** The YAML text of a rule file. */
export function ruleFile(f: RuleFile): string {
  const { local, testCa = true, agents, settings, ...rest } = f;
  const dnsHosts = Array.isArray(local) ? Object.fromEntries(local.map((h) => [h, ['127.0.0.1']])) : Object.fromEntries(Object.entries(local ?? {}).map(([h, a]) => [h, [a]]));
  const merged: Record<string, unknown> = { ...(testCa ? { upstream_ca_file: UPSTREAM_CA_FILE } : {}), ...settings };
  if (local) merged.dns_hosts = { ...(settings?.dns_hosts as Record<string, unknown> | undefined), ...dnsHosts };
  const doc: Record<string, unknown> = {
    ...(agents ? { agents: agents.map((a) => (typeof a === 'string' ? { name: a } : a)) } : {}),
    ...rest,
    ...(Object.keys(merged).length ? { settings: merged } : {}),
  };
  return stringify(doc, { aliasDuplicateObjects: false });
}

/** Writes each file into `rulesDir` (created when missing); returns `rulesDir`. */
export function writeRules(rulesDir: string, files: RuleFiles): string {
  mkdirSync(rulesDir, { recursive: true });
  for (const [name, f] of Object.entries(files)) writeFileSync(path.join(rulesDir, name), typeof f === 'string' ? f : ruleFile(f));
  return rulesDir;
}

/** A fresh temp dir with `rules/` holding `files`; `caDir` is where Turret will make its CA. */
export function makeDirs(files: RuleFiles): { dir: string; rulesDir: string; caDir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-it-'));
  return { dir, rulesDir: writeRules(path.join(dir, 'rules'), files), caDir: path.join(dir, 'ca') };
}

/** Agent `a` may open plain WebSocket sessions (and GET) to ws.turret.test on any port; `local` names resolve to 127.0.0.1. */
export function plainWsRules(local: string[] = ['ws.turret.test']): RuleFile {
  return {
    agents: ['a'],
    rules: [{ name: 'ws', methods: ['read', 'websocket'], schemes: ['http'], hosts: ['ws.turret.test:*'], unsafe_addresses: LOOPBACK }],
    local,
  };
}
