/**
 * Production mode (`turret start --production` or TURRET_PRODUCTION=1): a start with an insecure
 * setup refuses to run (exit 2) with one line per problem naming the fix; development mode logs
 * the same lines as warnings and starts.
 *
 * The checks are pure over `SetupFacts`, which start.ts gathers (file modes, listen addresses,
 * agents, the audit setting, the store key), so each is unit-tested without a process.
 *
 * Not here, because it refuses in every mode: a secret value written inline in a rule file
 * (`from: { value: … }`) is a configuration error of the rule loader (config/secrets.ts).
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { UsageError } from './common.js';

export interface SetupFacts {
  /** Mode bits (& 0o777) of the CA key and of turret.key; null when absent. */
  caKeyMode: number | null;
  caKeyPath: string;
  keyFileMode: number | null;
  keyFilePath: string;
  proxyListen: { host: string; port: number };
  /** null when the admin listener is off. */
  adminListen: { host: string; port: number } | null;
  adminToken: string | null;
  /** Every agent and whether it has a usable proxy credential (derived, or a token source with a value). */
  agents: Array<{ name: string; hasCredential: boolean }>;
  auditOff: boolean;
  /** The raw TURRET_STORE_KEY, when set (never printed). */
  storeKeyEnv: string | undefined;
  /** `--transparent` listener, when on. */
  transparentListen?: { host: string; port: number } | null;
  /** Agents identified by source address (`sources:`). */
  sourceAgents?: string[];
  /** `--trust-source-addresses`: the operator vouches that no one can spoof those addresses. */
  trustSourceAddresses?: boolean;
}

export interface SetupProblem {
  id: 'ca_key_mode' | 'key_file_mode' | 'admin_open' | 'admin_token_weak' | 'proxy_open_without_auth' | 'audit_off' | 'store_key_default' | 'source_identity_wildcard';
  problem: string;
  fix: string;
}

/** 0.0.0.0 or :: in any spelling: every interface, including ones other networks reach. */
export function isWildcard(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return ipaddr.isValid(h) && ipaddr.parse(h).range() === 'unspecified';
}

export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return mapped !== null && (mapped[1] ?? '').startsWith('127.');
}

/** Values seen in examples, tutorials and compose files; matched case-insensitively, ignoring non-letters. */
const KNOWN_DEFAULTS = [
  'changeme',
  'change-me',
  'default',
  'secret',
  'password',
  'passw0rd',
  'turret',
  'example',
  'test',
  'testing',
  'development',
  'dev',
  'admin',
  'replaceme',
  'replace-me',
  'todo',
  'xxx',
  'key',
  'storekey',
  'insecure',
];

/** True when the store key is a placeholder or has no entropy, whatever its encoding. */
export function isDefaultStoreKey(raw: string): boolean {
  const t = raw.trim();
  if (t === '') return true;
  const letters = t.toLowerCase().replace(/[^a-z0-9]/g, '');
  if (KNOWN_DEFAULTS.some((d) => letters === d.replace(/[^a-z0-9]/g, '') || letters.startsWith('changeme') || letters.startsWith('replaceme'))) return true;
  const bytes = Buffer.from(t, 'base64');
  if (bytes.length === 0) return true;
  // All one byte (base64 of zeros: "AAAA…=") or a repeated short pattern.
  if (new Set(bytes).size <= 4) return true;
  // A printable placeholder encoded in base64 ("changeme" padded to 32 bytes …).
  const text = bytes.toString('latin1').toLowerCase();
  if (/^[\x20-\x7e]+$/.test(text) && KNOWN_DEFAULTS.some((d) => d.length >= 4 && text.includes(d))) return true;
  return false;
}

function groupOrOtherCanRead(mode: number): boolean {
  return (mode & 0o077) !== 0;
}

export function setupProblems(f: SetupFacts): SetupProblem[] {
  const out: SetupProblem[] = [];
  if (f.caKeyMode !== null && groupOrOtherCanRead(f.caKeyMode)) {
    out.push({
      id: 'ca_key_mode',
      problem: `the CA key ${f.caKeyPath} is accessible to group or others (mode ${f.caKeyMode.toString(8).padStart(3, '0')})`,
      fix: `chmod 600 ${f.caKeyPath} (and chown it to the user Turret runs as)`,
    });
  }
  if (f.keyFileMode !== null && groupOrOtherCanRead(f.keyFileMode)) {
    out.push({
      id: 'key_file_mode',
      problem: `the key file ${f.keyFilePath} is accessible to group or others (mode ${f.keyFileMode.toString(8).padStart(3, '0')})`,
      fix: `chmod 600 ${f.keyFilePath}`,
    });
  }
  if (f.adminListen && !isLoopback(f.adminListen.host) && f.adminToken === null) {
    out.push({
      id: 'admin_open',
      problem: `the admin listener ${f.adminListen.host}:${f.adminListen.port} is beyond loopback without a token`,
      fix: 'set --admin-token-file FILE or TURRET_ADMIN_TOKEN, or listen on 127.0.0.1 (--admin 127.0.0.1:8751)',
    });
  }
  if (f.adminListen && f.adminToken !== null && f.adminToken.length < 16) {
    out.push({ id: 'admin_token_weak', problem: 'the admin token is shorter than 16 characters', fix: 'use a random token, e.g. openssl rand -hex 32 > admin.token' });
  }
  if (!isLoopback(f.proxyListen.host)) {
    const without = f.agents.filter((a) => !a.hasCredential).map((a) => a.name);
    if (f.agents.length === 0 || without.length > 0) {
      out.push({
        id: 'proxy_open_without_auth',
        problem:
          f.agents.length === 0
            ? `the proxy listens on ${f.proxyListen.host} beyond loopback and the rules define no agent`
            : `the proxy listens on ${f.proxyListen.host} beyond loopback and agent(s) ${without.join(', ')} have no usable credential`,
        fix: 'give every agent a token: source with a value (or remove token: to use the derived credential from turret env), or listen on 127.0.0.1',
      });
    }
  }
  // A source address is a claim the network makes, not a secret: on a listener that every
  // interface reaches, anyone who can send packets with a container's address is that agent.
  const sourceAgents = f.sourceAgents ?? [];
  const wide = [f.proxyListen, f.transparentListen].filter((l): l is { host: string; port: number } => !!l && isWildcard(l.host));
  if (sourceAgents.length > 0 && wide.length > 0 && !f.trustSourceAddresses) {
    out.push({
      id: 'source_identity_wildcard',
      problem: `agent(s) ${sourceAgents.join(', ')} are identified by source address and Turret listens on ${wide.map((l) => `${l.host}:${l.port}`).join(', ')} (every interface)`,
      fix: "listen on the container network's gateway address (e.g. --listen 10.88.0.1:8750 --transparent 10.88.0.1:8753), or give --trust-source-addresses when the host's firewall drops spoofed sources (docs/operations.md, Container networks)",
    });
  }
  if (f.auditOff) {
    out.push({ id: 'audit_off', problem: 'the audit log is off (--audit off)', fix: 'give --audit FILE (or TURRET_AUDIT) a path on persistent storage' });
  }
  if (f.storeKeyEnv !== undefined && isDefaultStoreKey(f.storeKeyEnv)) {
    out.push({
      id: 'store_key_default',
      problem: 'TURRET_STORE_KEY is a placeholder or low-entropy value',
      fix: 'generate one with: openssl rand -base64 32 (or unset it to use the key file)',
    });
  }
  return out;
}

export function productionFromEnv(flag: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  if (flag === true) return true;
  const v = (env.TURRET_PRODUCTION ?? '').trim().toLowerCase();
  return v === '1' || v === 'true' || v === 'yes';
}

/** Production: throw (exit 2) listing every problem; development: return them for warnings. */
export function enforceSetup(f: SetupFacts, production: boolean): SetupProblem[] {
  const problems = setupProblems(f);
  if (production && problems.length > 0) {
    const lines = problems.map((p) => `  - ${p.problem}; fix: ${p.fix}`);
    throw new UsageError(`production mode refuses to start:\n${lines.join('\n')}`);
  }
  return problems;
}
