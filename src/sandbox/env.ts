/**
 * The environment a `turret run` command starts with, isolated or not: an allow-list, never the
 * caller's whole environment. The caller's shell typically holds the very values Turret exists
 * to keep from the agent (a secret's `from: { env: … }` variable, other agents' proxy tokens,
 * cloud credentials, SSH_AUTH_SOCK), so nothing passes unless it is
 *
 *  - a variable a terminal program needs to behave (ALLOWED, LC_*),
 *  - one the operator names with `--pass-env NAME` (refused when it is a secret's or an agent
 *    token's source variable, or carries the same value as one), or
 *  - one Turret's env builder produced for this agent (proxy, CA, handle variables — whatever
 *    cli/env.ts and the client-trust module return; admitted as a class, not by name).
 */
import type { Policy, SecretSource } from '../policy/types.js';

/** Names a terminal program reasonably expects; none of them carries a credential. */
export const ALLOWED: readonly string[] = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'TERM',
  'COLORTERM',
  'TERM_PROGRAM',
  'TZ',
  'EDITOR',
  'VISUAL',
  'PAGER',
  'LESS',
  'COLUMNS',
  'LINES',
  'NO_COLOR',
  'FORCE_COLOR',
  'CLICOLOR',
];

/** Never passed, even when named: they point at host sockets or rewire the dynamic loader. */
const NEVER = new Set([
  'SSH_AUTH_SOCK',
  'DBUS_SESSION_BUS_ADDRESS',
  'DISPLAY',
  'WAYLAND_DISPLAY',
  'XDG_RUNTIME_DIR',
  'LD_PRELOAD',
  'LD_LIBRARY_PATH',
  'LD_AUDIT',
  'NODE_CHANNEL_FD',
]);

export class EnvError extends Error {}

function envSources(policy: Policy): Map<string, string> {
  const names = new Map<string, string>();
  const add = (s: SecretSource | null, what: string): void => {
    if (s?.kind === 'env') names.set(s.name, what);
  };
  for (const def of policy.secrets.values()) add(def.source, `the source of secret "${def.name}"`);
  for (const a of policy.agents.values()) add(a.token, `agent "${a.name}"'s proxy token`);
  return names;
}

export interface EnvPlan {
  /** The caller's environment. */
  host: NodeJS.ProcessEnv;
  /** What Turret's env builder produced for the agent (proxy, CA, handles …). */
  produced: Record<string, string>;
  /** Operator-named variables (`--pass-env`, repeatable, or comma-separated). */
  pass: readonly string[];
  policy: Policy;
  /** Overrides applied last (an isolated run's HOME/USER for the run user, the inside proxy URL). */
  overrides?: Record<string, string>;
}

export function buildEnv(p: EnvPlan): Record<string, string> {
  const sources = envSources(p.policy);
  const sensitive = new Set<string>();
  for (const name of sources.keys()) {
    const v = p.host[name];
    if (v) sensitive.add(v);
  }
  const out: Record<string, string> = {};
  const take = (name: string): void => {
    const v = p.host[name];
    if (v === undefined || NEVER.has(name) || sources.has(name) || sensitive.has(v)) return;
    out[name] = v;
  };
  for (const name of ALLOWED) take(name);
  for (const name of Object.keys(p.host)) if (name.startsWith('LC_')) take(name);
  for (const name of p.pass) {
    const why = sources.get(name);
    if (why) throw new EnvError(`--pass-env ${name}: that variable is ${why}; the agent must never hold it`);
    if (NEVER.has(name)) throw new EnvError(`--pass-env ${name}: that variable points at a host socket or changes the loader; it is never passed`);
    const v = p.host[name];
    if (v !== undefined && sensitive.has(v)) throw new EnvError(`--pass-env ${name}: its value is a secret's or an agent token's value`);
    if (v !== undefined) out[name] = v;
  }
  return { ...out, ...p.produced, ...(p.overrides ?? {}) };
}

/** `--pass-env A --pass-env B,C` → [A, B, C], each a valid variable name. */
export function parsePassEnv(v: unknown): string[] {
  const list = (Array.isArray(v) ? v : v === undefined ? [] : [v]).flatMap((x) => String(x).split(','));
  const names = list.map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(n)) throw new EnvError(`--pass-env needs variable names, got "${n.slice(0, 40)}"`);
  return names;
}
