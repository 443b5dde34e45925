/**
 * Upstream connections: undici pools whose connector is net/connect.ts's guarded connect.
 * undici never resolves a name itself: the connector resolves, classifies every answer and
 * dials a checked address with SNI = the host name, so there is no second lookup to rebind.
 *
 * Address exceptions belong to the rule that allowed a request. Pools are keyed by the
 * exception set, so a connection opened under one rule's exception is never reused for a
 * request that was allowed without it.
 */
import tls from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import { compileExceptions, type AddressException } from '../net/exceptions.js';
import { guardedConnect } from '../net/connect.js';
import { normaliseHost } from '../net/host.js';
import type { Resolver } from '../net/resolver.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Limits } from './limits.js';
import { StartReporting } from './queue-wait.js';
import type { Logger } from '../core/log.js';
import { isTurretError } from '../core/errors.js';
import { throttledWarn } from './listen/accept.js';

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
   * Each pool, and the same pool as requests dispatch to (with the queue-wait report,
   * queue-wait.ts), by exceptions key and then agent name: two lookups with strings that already
   * exist, not a key concatenated (and hashed afresh) per request.
   */
  private readonly agents = new Map<string, Map<string, { agent: Agent; dispatch: StartReporting }>>();

  /**
   * The key text of each exceptions list a rule carries (the same array on every request it
   * allows): serialised once, not per request.
   */
  private readonly exceptionKeys = new WeakMap<readonly AddressException[], string>();

  /** Trust for every upstream TLS connection of this policy, built once (see net/connect.ts). */
  private readonly secureContext: tls.SecureContext;

  constructor(private readonly o: UpstreamOptions) {
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
   * The pool for `agent`'s requests under `exceptions`. Each agent has its own pools (undici
   * keeps one per origin inside an Agent), of upstreamConnectionsPerAgent connections each, so
   * one agent's hung or slow requests queue behind that agent's own connections and never delay
   * another agent's requests to the same origin (docs/operations.md, "Fair upstream connections").
   */
  dispatcher(exceptions: readonly AddressException[], agentName = ''): StartReporting {
    let ex = this.exceptionKeys.get(exceptions);
    if (ex === undefined) this.exceptionKeys.set(exceptions, (ex = JSON.stringify(exceptions)));
    let byAgent = this.agents.get(ex);
    if (!byAgent) this.agents.set(ex, (byAgent = new Map()));
    let pool = byAgent.get(agentName);
    if (!pool) {
      const agent = this.create(exceptions);
      pool = { agent, dispatch: new StartReporting(agent) };
      byAgent.set(agentName, pool);
    }
    return pool.dispatch;
  }

  private create(exceptions: readonly AddressException[]): Agent {
    const permit = exceptions.length > 0 ? compileExceptions([...exceptions]) : undefined;
    const { resolver, selfAddresses, limits, metrics } = this.o;
    const secureContext = this.secureContext;
    return new Agent({
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: limits.headersTimeoutMs,
      bodyTimeout: limits.bodyTimeoutMs,
      maxHeaderSize: 64 * 1024,
      connections: limits.upstreamConnectionsPerAgent,
      connect: (opts, callback) => {
        const started = process.hrtime.bigint();
        const hostname = opts.hostname.replace(/^\[(.*)\]$/, '$1');
        let target: { host: string; kind: ReturnType<typeof normaliseHost>['kind'] };
        try {
          target = normaliseHost(hostname);
        } catch (e) {
          callback(e as Error, null);
          return;
        }
        const https = opts.protocol === 'https:';
        const port = Number(opts.port) || (https ? 443 : 80);
        guardedConnect({
          host: target.host,
          port,
          kind: target.kind,
          resolver,
          permit,
          selfAddresses,
          timeoutMs: limits.connectTimeoutMs,
          tls: https ? { servername: opts.servername ?? target.host, secureContext, ALPNProtocols: ['http/1.1'] } : undefined,
          onRefused: (c) => metrics?.connectsRefused.inc({ class: c.class }),
        }).then(
          (socket) => {
            metrics?.upstreamConnect.observe({ scheme: https ? 'https' : 'http' }, Number(process.hrtime.bigint() - started) / 1e9);
            callback(null, socket);
          },
          (err: Error) => {
            this.noteFailure(err);
            callback(err, null);
          },
        );
      },
    });
  }

  /**
   * A raw guarded connection (WebSocket upgrades, websocket.ts): the same resolver, CA list,
   * self addresses, timeouts and rule exceptions as this pool's connector, without undici.
   */
  connectRaw(host: string, port: number, https: boolean, exceptions: readonly AddressException[]): Promise<import('node:net').Socket> {
    const { resolver, selfAddresses, limits, metrics } = this.o;
    const secureContext = this.secureContext;
    const target = normaliseHost(host);
    return guardedConnect({
      host: target.host,
      port,
      kind: target.kind,
      resolver,
      permit: exceptions.length > 0 ? compileExceptions([...exceptions]) : undefined,
      selfAddresses,
      timeoutMs: limits.connectTimeoutMs,
      tls: https ? { servername: target.host, secureContext, ALPNProtocols: ['http/1.1'] } : undefined,
      onRefused: (c) => metrics?.connectsRefused.inc({ class: c.class }),
    }).catch((err: unknown) => {
      this.noteFailure(err);
      throw err;
    });
  }

  /**
   * Graceful (a reload: running requests finish first), or forced (shutdown after the drain:
   * whatever still holds a connection was cut already, and must not keep the process alive).
   */
  async close(force = false): Promise<void> {
    const all = [...this.agents.values()].flatMap((byAgent) => [...byAgent.values()]);
    this.agents.clear();
    await Promise.allSettled(all.map(({ agent: a }) => (force ? a.destroy() : a.close())));
  }
}
