/**
 * Everything a request needs, built once per start and swapped as a whole on reload.
 * `Runtime.state` is replaced atomically: a request reads it once at its start and keeps that
 * snapshot to the end, so a reload never changes the rules under a running request.
 */
import { recordLine } from './record-line.js';
import { TurretError } from '../core/errors.js';
import tls from 'node:tls';
import type { AuditSink } from '../audit/writer.js';
import type { Metrics } from '../metrics/metrics.js';
import { interfaceAddresses } from '../net/self.js';
import { createResolver, type LookupFn, type Resolver } from '../net/resolver.js';
import { AuthThrottle } from './auth-throttle.js';
import { TaintStore } from '../policy/taint.js';
import type { Policy, SecretDef } from '../policy/types.js';
import type { KeyRing } from '../secrets/keys.js';
import { openHandle } from '../secrets/handles.js';
import type { Secret } from '../secrets/secret.js';
import { SecretValues } from '../secrets/sources.js';
import { SecretStore, storeKey } from '../secrets/store.js';
import type { CertificateAuthority } from '../tls/ca.js';
import { LeafCache } from '../tls/leaf.js';
import { LocalState } from '../state/local.js';
import type { SharedState } from '../state/types.js';
import type { Logger } from '../core/log.js';
import { OAuthStore, withDynamicSecrets } from './oauth-store.js';
import { policyPatterns, ScrubberCache } from './stages/scrubbing.js';
import { UpstreamPool } from './upstream.js';
import { LiveExchanges } from './ending.js';
import { DEFAULT_LIMITS, TunnelSlots, type Limits } from './limits.js';
import { Approvals } from './approvals.js';
import { RecordFeed, teeToFeed } from './console/feed.js';

/** Per-policy state: rebuilt on every successful reload. */
export interface PolicyState {
  policy: Policy;
  resolver: Resolver;
  upstream: UpstreamPool;
  scrubbers: ScrubberCache;
  /** OAuth token capture (oauth.ts): shared by every policy state of this runtime. */
  oauth?: OAuthStore;
}

export interface RuntimeOptions {
  ca: CertificateAuthority;
  ring: KeyRing;
  keyDir: string;
  audit: AuditSink;
  metrics: Metrics | null;
  log: Logger;
  limits?: Partial<Limits>;
  /** Injected DNS lookup (tests); default: the system resolver. */
  lookup?: LookupFn;
  env?: NodeJS.ProcessEnv;
}

export class Runtime {
  readonly ca: CertificateAuthority;
  readonly ring: KeyRing;
  /** The CA directory: key file, store, issuance log, revocations. */
  readonly keyDir: string;
  readonly audit: AuditSink;
  readonly metrics: Metrics | null;
  readonly log: Logger;
  readonly limits: Limits;
  /** Exchanges not yet ended, each with its ending (ending.ts); the drain deadline cuts them. */
  readonly live = new LiveExchanges();
  readonly leaves: LeafCache;
  /** This process's buckets and the files beside the key file (state/local.ts). */
  readonly local: LocalState;
  /**
   * Rate limits, revocations and issued records: `local`, or Redis when settings name
   * shared_state (start.ts swaps it in before serving; state/redis.ts).
   */
  shared: SharedState;
  readonly values: SecretValues;
  /**
   * This host's interface addresses and Turret's listen addresses (server.ts adds those): never
   * a valid upstream without an unsafe_ exception. Loopback keeps its own class (net/classify.ts).
   */
  readonly selfAddresses: Set<string> = interfaceAddresses();
  /** Recent audit records for the console (console/feed.ts). */
  readonly feed: RecordFeed;
  /** Requests waiting for an operator (action: ask); start.ts gives it the rule-writing hook. */
  approvals = new Approvals(() => Promise.reject(new Error('"allow for" needs the rules directory of a running turret start')));
  /** Session labels (policy/taint.ts); outlive reloads like the rate-limit buckets; per process, not shared. */
  readonly taints = new TaintStore();
  /** Open tunnels per agent (max_tunnels_per_agent); outlive reloads like the tunnels themselves. */
  readonly tunnelSlots = new TunnelSlots();
  /** Failed proxy credentials per client address (auth-throttle.ts); outlives reloads too. */
  readonly authThrottle = new AuthThrottle();
  /** The last refused reload (null after a successful one), for health output. */
  lastReloadError: { at: string; why: string; problems: string[] } | null = null;
  /** First audit write failure since start (message only), or null. */
  auditFailure: string | null = null;
  /** Production: refuse traffic once the audit log cannot be written (promise 5 over availability). */
  failClosedOnAuditFailure = false;

  /**
   * Throws 503 when Turret must not serve: in production, after an audit write failed (a
   * decision without a record breaks promise 5). Sticky until restart: the records lost in
   * between cannot be recovered, and an operator should look (turret audit verify shows the gap).
   */
  assertServing(): void {
    if (this.auditFailure !== null && this.failClosedOnAuditFailure) {
      throw new TurretError('proxy_unavailable', 'the audit log cannot be written, and production mode refuses traffic that would leave no audit record');
    }
    // Production with Redis unreachable: no limit or revocation may silently stop applying.
    const refusal = this.shared.refusal();
    if (refusal !== null) throw new TurretError('state_unavailable', refusal);
  }
  /** Tokens captured from OAuth token endpoints (in memory only; see oauth.ts). */
  readonly oauth: OAuthStore;
  private readonly lookup: LookupFn | undefined;
  private current: PolicyState | null = null;

  constructor(o: RuntimeOptions) {
    this.ca = o.ca;
    this.ring = o.ring;
    // The same line filter as the audit log and logs (cli/start.ts): handles → ids, secrets scrubbed.
    this.feed = new RecordFeed((s) => recordLine(this.ring, this.ready ? this.state.scrubbers.get() : null, s));
    this.audit = teeToFeed(o.audit, this.feed);
    this.metrics = o.metrics;
    this.log = o.log;
    this.limits = { ...DEFAULT_LIMITS, ...o.limits };
    this.leaves = new LeafCache(o.ca, 10_000, (r, seconds) => {
      this.metrics?.leafCache.inc({ result: r });
      if (seconds !== undefined) this.metrics?.leafMint.observe(seconds);
    });
    // Rate-limit buckets live here, not on the policy: a reload does not reset an agent's limit.
    this.local = new LocalState(o.keyDir);
    this.shared = this.local;
    this.keyDir = o.keyDir;
    this.values = new SecretValues(o.env, new SecretStore(o.keyDir, storeKey(o.ring, o.env)));
    this.lookup = o.lookup;
    this.oauth = new OAuthStore(o.ring);
  }

  get state(): PolicyState {
    if (!this.current) throw new Error('runtime used before a policy was installed');
    return this.current;
  }

  get ready(): boolean {
    return this.current !== null;
  }

  /** Build per-policy state and swap it in (the loader has checked the settings it reads). */
  install(policy: Policy): void {
    // settings.upstream_ca_file was read and checked by the loader (config/common.ts).
    const extraCa = policy.settings.upstreamCa;
    const servers = policy.settings.dnsServers;
    const resolver = createResolver({ lookup: this.lookup, staticHosts: policy.settings.dnsHosts, ...(servers ? { servers } : {}) });
    // Interfaces change (DHCP, containers): every reload adds the current ones. Addresses are
    // never removed, so an address that left the host stays refused (fail closed).
    for (const a of interfaceAddresses()) this.selfAddresses.add(a);
    const ca = extraCa ? [...tls.rootCertificates, extraCa] : [...tls.rootCertificates];
    const upstream = new UpstreamPool({ resolver, ca, selfAddresses: this.selfAddresses, limits: this.limits, metrics: this.metrics, log: this.log });
    // Captured OAuth tokens join the secret table (a view) and so the scrubber and injection.
    const live = withDynamicSecrets(policy, this.oauth);
    const scrubbers = new ScrubberCache(
      () => this.loadedSecrets(live),
      policyPatterns(policy),
      (h) => openHandle(this.ring, h) !== null,
      () => this.oauth.version,
    );
    const old = this.current;
    this.current = { policy: live, resolver, upstream, scrubbers, oauth: this.oauth };
    // Old connections finish their requests; the pool then closes.
    void old?.upstream.close();
  }

  secretValue(def: SecretDef): Secret | null {
    return this.oauth.value(def.name) ?? this.values.load(def.name, def.source);
  }

  private loadedSecrets(policy: Policy): Secret[] {
    const out: Secret[] = [];
    for (const def of policy.secrets.values()) {
      const v = this.secretValue(def);
      if (v) out.push(v);
    }
    return out;
  }

  /** Shutdown, after the drain: the upstream pools are destroyed, not waited for (drain.ts). */
  async close(): Promise<void> {
    await this.current?.upstream.close(true);
    await this.shared.close();
  }
}
