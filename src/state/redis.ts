/**
 * RedisState: rate limits, revocations and issued-handle records in one Redis shared by every
 * replica and worker.
 *
 * - Limits: one Lua script per request takes from all its buckets atomically (scripts.ts).
 * - Revocations: a sorted set (durable, read in full at every (re)connect) plus a pub/sub
 *   channel (every replica adds a new id to its in-memory mirror as soon as it is published).
 *   isRevoked() reads the mirror, so checking a handle costs no round trip. The mirror is a
 *   union: ids never leave it before they expire, the local revocation file is still honoured,
 *   and ids Redis lost (restarted without persistence) are written back on reconnect.
 * - Issued records: a hash of id → record, pruned by expiry.
 *
 * Unreachable Redis (at start or later): `refusal()` says why, and in production the proxy
 * answers 503 state_unavailable to every request and /readyz is not ready; in development limits
 * and revocations fall back to LocalState with a warning. ioredis reconnects by itself; on
 * 'ready' the subscription and the mirror are re-established before the state counts as
 * connected again.
 *
 * A command that times out (`shared_state.timeout`) drops the connection, which is then made
 * again: replies on one connection come in order, so a server that sent part of a reply and
 * stopped (or hangs) would otherwise time out every later command on it too, for good, without
 * ever counting as lost.
 */
import { Redis } from 'ioredis';
import { TurretError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { LimitCheck, LimitResult } from '../policy/ratelimit.js';
import type { SharedStateSettings } from '../policy/types.js';
import type { HandleClaims } from '../secrets/handles.js';
import type { IssuedRecord } from '../secrets/issued.js';
import { describeError, redisOptions, type Credentials } from './connect.js';
import { guardRedisParser } from './parser-guard.js';
import type { LocalState } from './local.js';
import { ISSUE_LUA, REVOKE_LUA, TAKE_LUA } from './scripts.js';
import type { SharedState, StateHealth } from './types.js';

interface Scripts {
  turretTake(numKeys: number, ...args: Array<string | number>): Promise<[number, string?]>;
  turretRevoke(key: string, id: string, exp: number, channel: string): Promise<number>;
  turretIssue(hash: string, zset: string, id: string, json: string, exp: number, pruneBefore: number): Promise<number>;
}

/** ioredis's rejection of a command that got no reply within `commandTimeout` (Command.js). */
const COMMAND_TIMED_OUT = 'Command timed out';

/** Issued records are kept this long past their handle's expiry (`handle list --all` shows them). */
const ISSUED_KEEP_S = 30 * 86400;

export interface RedisStateOptions {
  settings: SharedStateSettings;
  credentials: Credentials;
  local: LocalState;
  production: boolean;
  log: Logger;
  /** false for the CLI: one connection, no subscription, give up after a few tries. */
  server: boolean;
}

export class RedisState implements SharedState {
  readonly kind = 'redis';
  private readonly cmd: Redis & Scripts;
  private readonly sub: Redis | null;
  private readonly mirror = new Map<string, number>();
  private synced = false;
  private subscribed = false;
  private syncGen = 0;
  private lastError: string | null = null;
  private everConnected = false;
  private closing = false;
  private readonly keys: { revoked: string; channel: string; issued: string; issuedExp: string; bucket: (k: string) => string };

  constructor(private readonly o: RedisStateOptions) {
    const p = o.settings.keyPrefix;
    this.keys = { revoked: `${p}revoked`, channel: `${p}revoked`, issued: `${p}issued`, issuedExp: `${p}issued:exp`, bucket: (k) => `${p}rl:${k}` };
    guardRedisParser();
    const opts = redisOptions(o.settings, o.credentials, { server: o.server });
    if (!o.server) opts.retryStrategy = (times) => (times > 2 ? null : 200);
    this.cmd = new Redis(opts) as Redis & Scripts;
    this.cmd.defineCommand('turretTake', { lua: TAKE_LUA });
    this.cmd.defineCommand('turretRevoke', { numberOfKeys: 1, lua: REVOKE_LUA });
    this.cmd.defineCommand('turretIssue', { numberOfKeys: 2, lua: ISSUE_LUA });
    this.cmd.on('error', (e: unknown) => this.noteError(e));
    this.cmd.on('ready', () => void this.resync());
    this.cmd.on('close', () => this.lost());
    this.sub = o.server ? new Redis(opts) : null;
    if (this.sub) {
      const sub = this.sub;
      sub.on('error', (e: unknown) => this.noteError(e));
      sub.on('close', () => {
        this.subscribed = false;
        this.lost();
      });
      sub.on('ready', () => {
        sub.subscribe(this.keys.channel).then(
          () => {
            this.subscribed = true;
            void this.resync();
          },
          (e: unknown) => this.noteError(e),
        );
      });
      sub.on('message', (_ch: string, msg: string) => this.applyMessage(msg));
    }
  }

  /**
   * Connects. The proxy waits until the revocation set has been read (so a restarted replica
   * never serves a revoked handle from an empty mirror), at most `waitMs`; past that it starts
   * anyway, refusing (production) or on local state (development), and keeps reconnecting.
   * The CLI throws when Redis cannot be reached.
   */
  async start(waitMs = 0): Promise<void> {
    const first = this.cmd.connect();
    void this.sub?.connect().catch(() => {});
    if (this.o.server) {
      first.catch(() => {}); // reconnects on its own; refusal() reports the outage meanwhile
      const end = Date.now() + waitMs;
      while (!this.synced && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      if (!this.synced) {
        const fields = { url: this.o.settings.url, error: this.lastError ?? 'not connected yet' };
        if (this.o.production) this.o.log.error('shared state unreachable at start; refusing traffic until it is reachable (production)', fields);
        else this.o.log.warn('shared state unreachable at start; serving limits and revocations from local state until it is reachable (development)', fields);
      }
      return;
    }
    try {
      await first;
    } catch (e) {
      throw new Error(`the shared state ${this.o.settings.url} cannot be reached (${describeError(e)})`);
    }
    await this.readRevoked();
  }

  private noteError(e: unknown): void {
    this.lastError = describeError(e);
  }

  /**
   * A command failed: noted, and when it timed out the command connection is dropped and made
   * again (see the module header). 'close' then marks the state lost until the mirror is re-read.
   */
  private failed(e: unknown): void {
    this.noteError(e);
    if (e instanceof Error && e.message === COMMAND_TIMED_OUT && !this.closing && this.cmd.status === 'ready') {
      this.o.log.warn('shared state command timed out; dropping the connection and connecting again', { url: this.o.settings.url, timeout_ms: this.o.settings.timeoutMs });
      this.cmd.disconnect(true);
    }
  }

  /** `p`, with a timeout dropping the connection (failed()); the error is passed on. */
  private watched<T>(p: Promise<T>): Promise<T> {
    return p.catch((e: unknown) => {
      this.failed(e);
      throw e;
    });
  }

  private lost(): void {
    if (this.closing) return;
    this.syncGen++;
    if (!this.synced) return;
    this.synced = false;
    const why = this.lastError ?? 'connection closed';
    if (this.o.production) this.o.log.error('shared state unreachable; refusing traffic until it is back (production)', { url: this.o.settings.url, error: why });
    else this.o.log.warn('shared state unreachable; serving limits and revocations from local state until it is back (development)', { url: this.o.settings.url, error: why });
  }

  /** Merge the durable set into the mirror, write back what Redis lost, then count as connected. */
  private async resync(): Promise<void> {
    if (this.cmd.status !== 'ready' || (this.sub && !this.subscribed)) return;
    const gen = ++this.syncGen;
    try {
      const healed = await this.readRevoked();
      if (gen !== this.syncGen || this.closing) return;
      this.synced = true;
      this.lastError = null;
      this.o.log.info(this.everConnected ? 'shared state reconnected' : 'shared state connected', { url: this.o.settings.url, revocations: this.mirror.size, restored: healed });
      this.everConnected = true;
    } catch (e) {
      this.failed(e);
    }
  }

  private async readRevoked(): Promise<number> {
    const now = Math.floor(Date.now() / 1000);
    await this.cmd.zremrangebyscore(this.keys.revoked, '-inf', now);
    const flat = await this.cmd.zrangebyscore(this.keys.revoked, now, '+inf', 'WITHSCORES');
    const seen = new Set<string>();
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const id = flat[i] as string;
      seen.add(id);
      this.mirror.set(id, Math.max(Number(flat[i + 1]), this.mirror.get(id) ?? 0));
    }
    let healed = 0;
    for (const [id, exp] of this.mirror) {
      if (exp <= now) this.mirror.delete(id);
      else if (!seen.has(id)) {
        await this.cmd.zadd(this.keys.revoked, exp, id);
        healed++;
      }
    }
    return healed;
  }

  private applyMessage(msg: string): void {
    const [id, exp] = msg.split(' ');
    if (!id || !/^[0-9a-f]{32}$/.test(id)) return;
    const known = this.mirror.has(id);
    this.mirror.set(id, Number(exp) || Math.floor(Date.now() / 1000) + 366 * 86400);
    if (!known) this.o.log.info('handle revoked (shared state)', { handle_id: id });
  }

  private unavailable(): TurretError {
    return new TurretError('state_unavailable', 'the shared state (Redis) is unreachable, and production mode refuses to serve without its rate limits and revocations');
  }

  async take(checks: readonly LimitCheck[]): Promise<LimitResult> {
    if (checks.length === 0) return { ok: true };
    if (this.cmd.status === 'ready') {
      const args: Array<string | number> = [checks.length, ...checks.map((c) => this.keys.bucket(c.key))];
      for (const c of checks) args.push(c.spec.requests, c.spec.perMs, c.spec.burst);
      try {
        const [i, tokens] = await this.cmd.turretTake(...(args as [number, ...Array<string | number>]));
        if (i === 0) return { ok: true };
        const c = checks[i - 1]!;
        const rate = c.spec.requests / c.spec.perMs;
        return { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - Number(tokens)) / rate / 1000)), label: c.label, spec: c.spec };
      } catch (e) {
        this.failed(e);
      }
    }
    if (this.o.production) throw this.unavailable();
    return this.o.local.takeNow(checks);
  }

  isRevoked(id: string): boolean {
    return this.mirror.has(id) || this.o.local.isRevoked(id);
  }

  async revoke(id: string, exp: number): Promise<void> {
    this.mirror.set(id, Math.max(exp, this.mirror.get(id) ?? 0));
    // The local file too: this replica keeps the revocation across a restart even if Redis lost it.
    await this.o.local.revoke(id, exp);
    await this.watched(this.cmd.turretRevoke(this.keys.revoked, id, exp, this.keys.channel));
  }

  async recordIssued(claims: HandleClaims, by: string): Promise<void> {
    const rec: IssuedRecord = { id: claims.id, agent: claims.agent, secret: claims.secret, iat: claims.iat, exp: claims.exp, by };
    await this.o.local.recordIssued(claims, by);
    await this.watched(this.cmd.turretIssue(this.keys.issued, this.keys.issuedExp, claims.id, JSON.stringify(rec), claims.exp, Math.floor(Date.now() / 1000) - ISSUED_KEEP_S));
  }

  async listIssued(): Promise<IssuedRecord[]> {
    const byId = new Map<string, IssuedRecord>();
    for (const r of await this.o.local.listIssued()) byId.set(r.id, r);
    for (const json of Object.values(await this.watched(this.cmd.hgetall(this.keys.issued)))) {
      try {
        const r = JSON.parse(json) as IssuedRecord;
        if (typeof r.id === 'string' && typeof r.agent === 'string' && typeof r.secret === 'string' && typeof r.exp === 'number') byId.set(r.id, r);
      } catch {
        // A record some other writer put there: not ours to show.
      }
    }
    return [...byId.values()].sort((a, b) => a.iat - b.iat);
  }

  refusal(): string | null {
    if (!this.o.production || this.synced) return null;
    return this.unavailable().reason;
  }

  health(): StateHealth {
    return {
      kind: 'redis',
      connected: this.synced,
      mode: this.synced ? 'shared' : this.o.production ? 'refusing' : 'local-fallback',
      lastError: this.synced ? null : (this.lastError ?? 'not connected yet'),
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    const clients: Redis[] = this.sub ? [this.cmd, this.sub] : [this.cmd];
    await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
  }
}
