/**
 * `turret start`: load rules (exit 2 when invalid), load or create the CA and key file, open
 * the audit log, start the proxy. SIGHUP and rule-file changes reload (an invalid new policy
 * keeps the old one serving); SIGTERM/SIGINT close the listener and let running requests end.
 */
import cluster from 'node:cluster';
import { Approvals } from '../proxy/approvals.js';
import { addApprovalRule, approvalEntry } from '../proxy/approval-rules.js';
import { watch } from 'node:fs';
import path from 'node:path';
import { openAuditLog, type AuditSink } from '../audit/writer.js';
import { loadPolicy } from '../config/load.js';
import { ConfigError } from '../config/yaml.js';
import { createLogger, type Level } from '../core/log.js';
import { createMetrics } from '../metrics/metrics.js';
import type { Policy } from '../policy/types.js';
import { DEFAULT_ADMIN_LISTEN, readiness, startAdminServer, type AdminServer, type StartupState } from '../proxy/listen/admin.js';
import { Runtime } from '../proxy/runtime.js';
import { startProxyServer } from '../proxy/listen/server.js';
import { KEY_FILE, loadKeyRing } from '../secrets/keys.js';
import { recordLine } from '../proxy/record-line.js';
import { scrubbedBodyInto } from '../proxy/record-scrub.js';
import { caKeyMode, caPaths, loadOrCreateCa } from '../tls/ca.js';
import { adminToken, agentCredentials, closeAuditBy, countedSink, fileMode, lastWins, parseDrainTimeout, type OpsOptions } from './start-ops.js';
import { parseLimits } from './limits.js';
import { enforceSetup, productionFromEnv } from './production.js';
import { openProxyState } from './shared-state.js';
import { parseWorkers, startPrimary, workerAuditPath } from './workers.js';
import { scrubUnlessClean } from '../proxy/clean-strings.js';
import type { Scrubber } from '../scrub/scrubber.js';
import { caDir, DEFAULT_LISTEN, parseListen, rulesDir, UsageError, type CommonOptions } from './common.js';
import { VERSION } from '../core/version.js';
import { serialReloads } from './reload.js';
import { semiSpaceMb, tuneHeapGrowth } from './heap.js';

export interface StartOptions extends CommonOptions, OpsOptions {
  listen?: string;
  audit?: string;
  logLevel?: string;
  watch?: boolean;
  /** HOST:PORT of the transparent listener (proxy/transparent.ts). */
  transparent?: string;
  trustSourceAddresses?: boolean;
  /** Processes sharing the listen sockets (workers.ts); default 1. */
  workers?: string | number;
}

export async function startCommand(opts: StartOptions): Promise<void> {
  // Before any traffic: fewer full collections under streaming load (heap.ts).
  tuneHeapGrowth();
  // The log's reader may go away (a pipe whose reader exited, a collector restarting): the next
  // line's EPIPE was an 'error' nobody listened for, which ended the process. The proxy keeps
  // serving; its log lines are lost from then on, its audit log stays the record
  // (test/integration/crash-log-reader.test.ts).
  process.stderr.on('error', () => undefined);
  // SIGHUP means "reload", but until a listener exists Node's default for it is to end the
  // process: a reload sent while Turret starts (a supervisor's reload right after a restart, a
  // config push) killed it. One that arrives before the reload handler is installed is
  // remembered, and the rules are reloaded once started.
  const hupWhileStarting = { seen: false };
  const earlyHup = (): void => void (hupWhileStarting.seen = true);
  process.on('SIGHUP', earlyHup);
  const o = lastWins(opts);
  const workers = parseWorkers(o.workers);
  // The primary's own handler replaces it; workers start with every rule file as it is then.
  if (workers > 1 && cluster.isPrimary) return startPrimary(o, workers, () => process.off('SIGHUP', earlyHup));
  const log = createLogger({ level: (o.logLevel ?? process.env.TURRET_LOG_LEVEL ?? 'info') as Level });
  const rules = rulesDir(o);
  const listen = parseListen(o.listen ?? process.env.TURRET_LISTEN ?? DEFAULT_LISTEN, '--listen');
  const transparentSpec = o.transparent ?? process.env.TURRET_TRANSPARENT;
  const transparentListen = transparentSpec ? parseListen(transparentSpec, '--transparent') : null;
  const production = productionFromEnv(o.production);
  const limits = parseLimits(o.limit);
  const drainMs = parseDrainTimeout(o.drainTimeout);
  const adminSpec = o.admin ?? process.env.TURRET_ADMIN ?? DEFAULT_ADMIN_LISTEN;
  const adminListen = adminSpec === 'off' ? null : parseListen(adminSpec, '--admin');
  const token = await adminToken(o);
  const auditSpec = workerAuditPath(o.audit ?? process.env.TURRET_AUDIT ?? 'var/audit.jsonl');
  const policy = await loadPolicy(rules); // ConfigError → exit 2 before anything listens
  const dir = caDir(o);
  const { ca, created } = await loadOrCreateCa(dir, true);
  if (created) log.info('created a new local CA', { dir, cert: path.join(dir, 'ca.crt') });
  const ring = await loadKeyRing(dir, true);
  const auditOff = auditSpec === 'off';
  const auditPath = auditOff ? null : path.resolve(auditSpec);
  const metrics = createMetrics({ version: VERSION });
  // --audit off (development only: production refuses it below) still needs a sink to write to.
  const noAudit: AuditSink = { write: () => {}, close: async () => {} };
  const auditSink: AuditSink = auditPath
    ? await openAuditLog({
        path: auditPath,
        bodyInto: (rec, out) => scrubbedBodyInto(rec, lineScrubber(), out),
        onError: (e) => {
          metrics.auditErrors.inc();
          if (rt && rt.auditFailure === null) rt.auditFailure = e.message;
          log.error('audit write failed', { error: e.message });
        },
        // Development: readiness recovers once records land again. Production stays 503 until
        // a restart (runtime.ts assertServing): the records lost in between need an operator.
        onRecover: () => {
          log.info('audit writes resumed', { production });
          if (rt && !production) rt.auditFailure = null;
        },
      })
    : noAudit;
  let rt: Runtime;
  try {
    rt = new Runtime({ ca, ring, keyDir: dir, log, metrics, limits, audit: countedSink(auditSink, metrics) });
  } catch (e) {
    // A malformed TURRET_STORE_KEY is configuration, not a runtime failure.
    if ((e as Error)?.name === 'StoreError') throw new UsageError(`${(e as Error).message}; generate one with: openssl rand -base64 32`);
    throw e;
  }
  // Audit records and log lines: secrets scrubbed, and every handle replaced by its id
  // (secrets/handle-ref.ts) — a handle is a live credential, the logs are not for using it.
  // Strings this scrubber already left unchanged (most of a record's keys and values) are not
  // scanned again (proxy/clean-strings.ts).
  // Made once per scrubber (a new one comes with each secret change), not per record and log line.
  const unready = (s: string): string => recordLine(ring, null, s);
  let filterOf: Scrubber | null = null;
  let filter = unready;
  function lineScrubber(): (s: string) => string {
    if (!rt.ready) return unready;
    const scrubber = rt.state.scrubbers.get();
    if (scrubber !== filterOf) {
      const full = (s: string): string => recordLine(ring, scrubber, s);
      filter = (s) => scrubUnlessClean(scrubber, s, full);
      filterOf = scrubber;
    }
    return filter;
  }
  function scrubLine(s: string): string {
    return lineScrubber()(s);
  }
  rt.install(policy);
  log.setScrub(scrubLine);
  warnMissingSecrets(rt, policy);
  metrics.lastReloadSuccess.setToCurrentTime();
  const problems = enforceSetup(
    {
      caKeyMode: await caKeyMode(dir),
      caKeyPath: caPaths(dir).key,
      keyFileMode: await fileMode(path.join(dir, KEY_FILE)),
      keyFilePath: path.join(dir, KEY_FILE),
      proxyListen: listen,
      adminListen,
      adminToken: token,
      agents: agentCredentials(rt, policy),
      auditOff,
      storeKeyEnv: process.env.TURRET_STORE_KEY,
      transparentListen,
      sourceAgents: [...policy.agents.values()].filter((a) => a.sources.length > 0).map((a) => a.name),
      trustSourceAddresses: o.trustSourceAddresses === true,
    },
    production,
  );
  for (const p of problems) log.warn('insecure setup (production mode would refuse to start)', { problem: p.problem, fix: p.fix });
  rt.failClosedOnAuditFailure = production;
  // Before the listener opens: production must never serve a request without its shared state.
  rt.shared = await openProxyState({ settings: policy.settings, local: rt.local, values: rt.values, production, log });
  const state: StartupState = { rt, auditOpen: true, draining: false };
  if (transparentListen && ![...policy.agents.values()].some((a) => a.sources.length > 0)) {
    log.warn('--transparent is on but no agent has sources:; every redirected connection will be refused (407)');
  }
  const proxy = await startProxyServer(rt, listen, transparentListen);
  let admin: AdminServer | null = null;
  if (adminListen) {
    try {
      admin = await startAdminServer({ listen: adminListen, token, metrics, state, log });
    } catch (e) {
      const why = `the admin listener ${adminSpec} cannot listen (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); use --admin HOST:PORT or --admin off`;
      // Production needs its health and metrics; a second development instance can do without.
      if (production) {
        await proxy.close(0);
        throw new UsageError(why);
      }
      log.warn(`${why}; continuing without /metrics, /healthz and /readyz`);
    }
  }
  const adminAddr = admin?.address();
  readiness(state);
  const addr = proxy.address();
  const taddr = proxy.transparentAddress();

  // One reload at a time; a change that lands during one is reloaded right after it (reload.ts).
  const reload = serialReloads(async (why: string): Promise<void> => {
    try {
      const next = await loadPolicy(rules);
      rt.install(next);
      rt.lastReloadError = null;
      if (JSON.stringify(next.settings.sharedState ?? null) !== JSON.stringify(policy.settings.sharedState ?? null)) {
        log.warn('settings.shared_state changed; the new value takes effect at the next restart', { why });
      }
      metrics.reloads.inc({ result: 'ok' });
      metrics.lastReloadSuccess.setToCurrentTime();
      log.info('rules reloaded', { why, files: next.files, rule_count: next.rules.length });
      warnMissingSecrets(rt, next);
    } catch (e) {
      metrics.reloads.inc({ result: 'failed' });
      const problems = e instanceof ConfigError ? e.message.split('\n') : [(e as Error).message];
      rt.lastReloadError = { at: new Date().toISOString(), why, problems };
      log.error('reload refused; the previous rules keep serving', { why, problems });
    }
  });
  rt.approvals = new Approvals((a, until) =>
    addApprovalRule(
      rules,
      approvalEntry(a, until, a.rule.methods),
      () => loadPolicy(rules),
      () => reload(`approval ${a.id}`),
    ),
  );
  process.on('SIGHUP', () => void reload('SIGHUP'));
  process.off('SIGHUP', earlyHup);
  if (hupWhileStarting.seen) void reload('SIGHUP while starting');
  if (o.watch !== false) {
    let timer: NodeJS.Timeout | null = null;
    const w = watch(rules, () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => void reload('file change'), 200);
    });
    w.on('error', (e) => log.warn('rules directory watch failed; reload with SIGHUP', { error: e.message }));
  }
  let stopping = false;
  const stop = async (sig: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    state.draining = true; // /readyz turns 503 so load balancers stop sending
    rt.approvals.closeAll(); // nothing waits for an operator past shutdown
    readiness(state);
    log.info('stopping: draining connections', { signal: sig, drain_timeout_ms: drainMs });
    const d = await proxy.close(drainMs);
    log.info('stopped', { clean: d.clean, forced_connections: d.forced, drain_ms: d.ms });
    await rt.close();
    const audited = await closeAuditBy(rt.audit, drainMs, log);
    // process.exit() joins the writer thread, which a blocked write() never lets go.
    if (audited === 'stuck') process.kill(process.pid, 'SIGKILL');
    await admin?.close();
    process.exit(audited === 'ok' ? 0 : 1);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // A worker whose primary went away (SIGKILL, a crash): node:cluster would exit it at once
  // (process.exit(0) on the IPC disconnect), cutting its running requests without a record and
  // losing audit records not yet written. It drains as on SIGTERM instead, then exits; it gets no
  // new connections (the primary held the listening socket), so it never serves on unsupervised.
  cluster.worker?.once('disconnect', () => {
    if (cluster.worker) cluster.worker.exitedAfterDisconnect = true;
    void stop('primary gone');
  });
  // Announced last: a supervisor (or a test) may signal the moment it reads this line, so the
  // SIGTERM/SIGINT handlers above must already be installed or the signal kills without a drain.
  log.info('turret started', {
    listen: `${addr.address}:${addr.port}`,
    transparent: taddr ? `${taddr.address}:${taddr.port}` : 'off',
    admin: adminAddr ? `${adminAddr.address}:${adminAddr.port}` : 'off',
    admin_auth: token ? 'bearer' : 'none',
    mode: production ? 'production' : 'development',
    limits,
    drain_timeout_ms: drainMs,
    // V8's young-generation ceiling this process started with (heap.ts): 'default' means a launcher without it.
    max_semi_space_mb: semiSpaceMb(),
    rules: policy.files,
    agents: [...policy.agents.keys()],
    secrets: [...policy.secrets.keys()],
    rule_count: policy.rules.length,
    ca: path.join(dir, 'ca.crt'),
    audit: auditPath ?? 'off',
    shared_state: policy.settings.sharedState?.url ?? 'local',
    ...(cluster.isWorker ? { worker: Number(process.env.TURRET_WORKER_ID) } : {}),
  });
  // With a callback: the primary may be gone already, and a send on the closed channel without
  // one is an 'error' on process nobody listens for (an uncaught exception).
  if (cluster.isWorker) process.send?.({ turret: 'listening' }, undefined, undefined, () => undefined);
}

function warnMissingSecrets(rt: Runtime, policy: Policy): void {
  for (const def of policy.secrets.values()) {
    if (!rt.secretValue(def)) {
      rt.log.warn('secret has no value; requests that need it will be refused', { secret: def.name, source: rt.values.describe(def.source) });
    }
  }
}
