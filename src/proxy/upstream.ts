/**
 * Upstream connections: Turret's own HTTP/1.1 client (upstream-h1.ts) over connections that
 * net/connect.ts's guarded connect opens. The client never resolves a name itself: the connector
 * resolves, classifies every answer and dials a checked address with SNI = the host name, so
 * there is no second lookup to rebind.
 *
 * Address exceptions belong to the rule that allowed a request. Pools are keyed by the
 * exception set, so a connection opened under one rule's exception is never reused for a
 * request that was allowed without it.
 */
import tls from 'node:tls';
import { compileExceptions, type AddressException } from '../net/exceptions.js';
import { guardedConnect } from '../net/connect.js';
import { normaliseHost } from '../net/host.js';
import type { Resolver } from '../net/resolver.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Limits } from './limits.js';
import type { Logger } from '../core/log.js';
import { isTurretError } from '../core/errors.js';
import { throttledWarn } from './listen/accept.js';
import { OriginPool } from './upstream-h1-pool.js';
import { checkParser } from './llhttp.js';
import type { Classification } from '../net/classify.js';

export interface UpstreamOptions {
  resolver: Resolver;
  ca: string[];
  selfAddresses: ReadonlySet<string>;
  limits: Limits;
  metrics: Metrics | null;
  /** For the warn line when connects fail for want of a descriptor (each one is also audited `emfile`). */
  log?: Logger;
}

export class UpstreamPool {
  /**
   * The pools of each agent by exceptions key and then agent name, each holding one OriginPool
   * per origin: lookups with strings that already exist, not a key concatenated (and hashed
   * afresh) per request.
   */
  private readonly agents = new Map<string, Map<string, AgentPools>>();

  /**
   * The key text of each exceptions list a rule carries (the same array on every request it
   * allows): serialised once, not per request.
   */
  private readonly exceptionKeys = new WeakMap<readonly AddressException[], string>();

  /** Trust for every upstream TLS connection of this policy, built once (see net/connect.ts). */
  private readonly secureContext: tls.SecureContext;

  /** Set by close(): pools made afterwards (for requests still running) keep nothing idle. */
  private closed = false;

  constructor(private readonly o: UpstreamOptions) {
    // The HTTP/1.1 client rests on node:http's internal parser: refuse to start without it.
    checkParser();
    this.secureContext = tls.createSecureContext({ ca: o.ca, minVersion: 'TLSv1.2' });
    const warn = o.log ? throttledWarn(o.log) : null;
    this.noteFailure = (err) => {
      if (warn && isTurretError(err) && err.code === 'emfile') {
        warn('emfile', 'upstream connect failed: no file descriptor left (raise the open-files limit, docs/operations.md)', { code: 'emfile' });
      }
    };
  }

  /** Looks at every failed connect (a want of descriptors gets a throttled warn line). */
  private readonly noteFailure: (err: unknown) => void;

  /** How long a request may wait for one of its agent's connections (queue-wait.ts). */
  get queueTimeoutMs(): number {
    return this.o.limits.upstreamQueueTimeoutMs;
  }

  /**
   * The pool of `agent`'s requests to `origin` (`scheme://host:port`, an IPv6 host in brackets)
   * under `exceptions`. Each agent has its own pools, of upstreamConnectionsPerAgent connections
   * each, so one agent's hung or slow requests queue behind that agent's own connections and
   * never delay another agent's requests to the same origin (docs/operations.md, "Fair upstream
   * connections").
   */
  pool(exceptions: readonly AddressException[], agentName: string, origin: string, scheme: 'http' | 'https', host: string, port: number): OriginPool {
    let ex = this.exceptionKeys.get(exceptions);
    if (ex === undefined) this.exceptionKeys.set(exceptions, (ex = JSON.stringify(exceptions)));
    let byAgent = this.agents.get(ex);
    if (!byAgent) this.agents.set(ex, (byAgent = new Map()));
    let pools = byAgent.get(agentName);
    if (!pools) byAgent.set(agentName, (pools = { permit: exceptions.length > 0 ? compileExceptions([...exceptions]) : undefined, origins: new Map() }));
    let pool = pools.origins.get(origin);
    if (!pool) {
      const permit = pools.permit;
      const { limits } = this.o;
      const origins = pools.origins;
      // An origin's pool leaves the map once it holds nothing (no connection open or being
      // opened, no request waiting), and an agent's entry once it has no origin left: the maps
      // hold what is in use, not every origin ever visited. The next request makes a new pool.
      const empty = (p: OriginPool): void => {
        if (origins.get(origin) !== p) return;
        origins.delete(origin);
        if (origins.size === 0 && byAgent.get(agentName) === pools) {
          byAgent.delete(agentName);
          if (byAgent.size === 0 && this.agents.get(ex) === byAgent) this.agents.delete(ex);
        }
      };
      pool = new OriginPool(
        (signal) => {
          const started = process.hrtime.bigint();
          return this.dial(host, port, scheme === 'https', permit, signal).then((socket) => {
            this.o.metrics?.upstreamConnect.observe({ scheme }, Number(process.hrtime.bigint() - started) / 1e9);
            return socket;
          });
        },
        limits.upstreamConnectionsPerAgent,
        { headersMs: limits.headersTimeoutMs, bodyMs: limits.bodyTimeoutMs },
        empty,
      );
      origins.set(origin, pool);
      // After close (a reload): requests still running are served, nothing is kept idle.
      if (this.closed) pool.close(false);
    }
    return pool;
  }

  /** How many origin pools are held (all agents and exception sets): for tests. */
  get originPools(): number {
    let n = 0;
    for (const byAgent of this.agents.values()) for (const a of byAgent.values()) n += a.origins.size;
    return n;
  }

  /**
   * One new connection for a pool, or for a WebSocket upgrade (connectRaw): the guarded connect
   * with the rule's exceptions; `signal` aborts it (a pool's forced close). The pools time it
   * (upstream_connect_seconds).
   */
  private dial(host: string, port: number, https: boolean, permit: ((c: Classification) => boolean) | undefined, signal?: AbortSignal): Promise<import('node:net').Socket> {
    const { resolver, selfAddresses, limits, metrics } = this.o;
    let target: ReturnType<typeof normaliseHost>;
    try {
      target = normaliseHost(host.replace(/^\[(.*)\]$/, '$1'));
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return guardedConnect({
      host: target.host,
      port,
      kind: target.kind,
      resolver,
      permit,
      selfAddresses,
      timeoutMs: limits.connectTimeoutMs,
      signal,
      tls: https ? { servername: target.host, secureContext: this.secureContext, ALPNProtocols: ['http/1.1'] } : undefined,
      onRefused: (c) => metrics?.connectsRefused.inc({ class: c.class }),
    }).catch((err: unknown) => {
      this.noteFailure(err);
      throw err;
    });
  }

  /**
   * A raw guarded connection (WebSocket upgrades, websocket.ts): the same resolver, CA list,
   * self addresses, timeouts and rule exceptions as the pools' connections; no HTTP pool.
   */
  connectRaw(host: string, port: number, https: boolean, exceptions: readonly AddressException[]): Promise<import('node:net').Socket> {
    return this.dial(host, port, https, exceptions.length > 0 ? compileExceptions([...exceptions]) : undefined);
  }

  /**
   * Graceful (a reload: running requests finish first), or forced (shutdown after the drain:
   * whatever still holds a connection was cut already, and must not keep the process alive).
   */
  async close(force = false): Promise<void> {
    this.closed = true;
    const all = [...this.agents.values()].flatMap((byAgent) => [...byAgent.values()]);
    this.agents.clear();
    for (const a of all) for (const p of a.origins.values()) p.close(force);
    await Promise.resolve();
  }
}

/** One agent's pools under one exceptions list: the compiled exceptions, a pool per origin. */
interface AgentPools {
  permit: ((c: Classification) => boolean) | undefined;
  origins: Map<string, OriginPool>;
}
