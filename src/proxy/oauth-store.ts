/**
 * The captured OAuth tokens (stages/oauth.ts captures them): runtime state, in memory only,
 * bounded, shared by every policy state of a runtime. `withDynamicSecrets` lists them in a
 * policy's secret table and `Runtime.secretValue` asks this store first, so the secrets module
 * needs no change.
 */
import type { OAuthCaptureDef, Policy, SecretDef } from '../policy/types.js';
import { issueHandle } from '../secrets/handles.js';
import type { KeyRing } from '../secrets/keys.js';
import { Secret } from '../secrets/secret.js';

const MAX_ENTRIES = 10_000;
/** How long a captured refresh token (and an access token without expires_in) is kept. */
export const REFRESH_TTL_MS = 30 * 86_400_000;

interface Entry {
  def: SecretDef;
  value: Secret;
  expires: number;
}

export class OAuthStore {
  private readonly entries = new Map<string, Entry>();
  /** Bumped by every capture: the scrubber cache loads the secret table again when it changes. */
  version = 0;

  constructor(private readonly ring: KeyRing) {}

  /** The captured value for a dynamic secret name (null when unknown or expired). */
  value(name: string, now = Date.now()): Secret | null {
    const e = this.entries.get(name);
    if (!e) return null;
    if (e.expires <= now) {
      this.entries.delete(name);
      return null;
    }
    return e.value;
  }

  def(name: string): SecretDef | undefined {
    return this.entries.get(name)?.def;
  }

  defs(): SecretDef[] {
    return [...this.entries.values()].map((e) => e.def);
  }

  /** Keep `value` as dynamic secret `name` and return a handle for `agent`. */
  keep(def: SecretDef, value: string, agent: string, ttlMs: number): string {
    const now = Date.now();
    for (const [k, e] of this.entries) if (e.expires <= now) this.entries.delete(k);
    this.entries.delete(def.name); // re-insert: Map order is the eviction order
    while (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(def.name, { def, value: new Secret(def.name, value), expires: now + ttlMs });
    this.version++;
    return issueHandle(this.ring, { agent, secret: def.name, ttlSeconds: Math.max(1, Math.floor(ttlMs / 1000)) }).handle;
  }
}

/**
 * The secret definition a captured token is injected under. The name carries the agent: with one
 * name per endpoint, agent B's login replaced agent A's token and A's handle then injected B's
 * (promise 2: a handle turns into *its* agent's secret only).
 */
export function dynamicDef(d: OAuthCaptureDef, kind: 'access' | 'refresh', agent: string): SecretDef {
  const endpoint = { source: `${d.host}${d.port ? `:${d.port}` : ''}`, kind: 'exact' as const, host: d.host, port: d.port };
  return {
    name: `oauth:${d.name}:${kind}:${agent}`,
    // Never read: Runtime.secretValue asks the OAuthStore first. A store entry cannot have this name.
    source: { kind: 'store', name: `oauth:${d.name}:${kind}:${agent}` },
    hosts: kind === 'refresh' ? [...d.hosts, endpoint] : [...d.hosts],
    headers: [],
    env: [],
    methods: 'any',
    paths: null,
    query: false,
    // The refresh grant sends the refresh token in a form body.
    body: kind === 'refresh',
    onMisuse: 'deny',
    variants: [],
    aws: null,
    maxAgeMs: null,
    where: d.where,
  };
}

/** A policy whose secret table also lists the captured tokens (read-only view, no copy). */
export function withDynamicSecrets(policy: Policy, store: OAuthStore): Policy {
  const base = policy.secrets;
  const view = {
    get: (k: string) => base.get(k) ?? store.def(k),
    has: (k: string) => base.has(k) || store.def(k) !== undefined,
    get size() {
      return base.size + store.defs().length;
    },
    forEach(cb: (v: SecretDef, k: string, m: ReadonlyMap<string, SecretDef>) => void, thisArg?: unknown) {
      for (const [k, v] of this.entries()) cb.call(thisArg, v, k, view as unknown as ReadonlyMap<string, SecretDef>);
    },
    *entries() {
      yield* base.entries();
      for (const d of store.defs()) yield [d.name, d] as [string, SecretDef];
    },
    *keys() {
      for (const [k] of this.entries()) yield k;
    },
    *values() {
      for (const [, v] of this.entries()) yield v;
    },
    [Symbol.iterator]() {
      return this.entries();
    },
  };
  return { ...policy, secrets: view as unknown as ReadonlyMap<string, SecretDef> };
}
