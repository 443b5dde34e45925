/**
 * `turret start`: load rules (exit 2 when invalid), load or create the CA and key file, open
 * the audit log, start the proxy. SIGHUP and rule-file changes reload (an invalid new policy
 * keeps the old one serving); SIGTERM/SIGINT close the listener and let running requests end.
 */
import { watch } from 'node:fs';
import path from 'node:path';
import { openAuditLog } from '../audit/writer.js';
import { loadPolicy } from '../config/load.js';
import { ConfigError } from '../config/yaml.js';
import { createLogger, type Level } from '../core/log.js';
import { createMetrics } from '../metrics/metrics.js';
import type { Policy } from '../policy/types.js';
import { Runtime } from '../proxy/runtime.js';
import { startProxyServer } from '../proxy/server.js';
import { loadKeyRing } from '../secrets/keys.js';
import { loadOrCreateCa } from '../tls/ca.js';
import { caDir, DEFAULT_LISTEN, parseListen, rulesDir, type CommonOptions } from './common.js';

export interface StartOptions extends CommonOptions {
  listen?: string;
  audit?: string;
  logLevel?: string;
  watch?: boolean;
}

export async function startCommand(o: StartOptions): Promise<void> {
  const log = createLogger({ level: (o.logLevel ?? process.env.TURRET_LOG_LEVEL ?? 'info') as Level });
  const rules = rulesDir(o);
  const listen = parseListen(o.listen ?? process.env.TURRET_LISTEN ?? DEFAULT_LISTEN, '--listen');
  const policy = await loadPolicy(rules); // ConfigError → exit 2 before anything listens
  const dir = caDir(o);
  const { ca, created } = await loadOrCreateCa(dir, true);
  if (created) log.info('created a new local CA', { dir, cert: path.join(dir, 'ca.crt') });
  const ring = await loadKeyRing(dir, true);
  const auditPath = path.resolve(o.audit ?? process.env.TURRET_AUDIT ?? 'var/audit.jsonl');
  const metrics = createMetrics({ version: '0.1.0' });
  const rt = new Runtime({
    ca,
    ring,
    keyDir: dir,
    log,
    metrics,
    audit: await openAuditLog({
      path: auditPath,
      scrub: (rec) => JSON.parse(scrubLine(JSON.stringify(rec))) as typeof rec,
      onError: (e) => log.error('audit write failed', { error: e.message }),
    }),
  });
  function scrubLine(s: string): string {
    return rt.ready ? rt.state.scrubbers.get().scrubString(s).text : s;
  }
  rt.install(policy);
  log.setScrub(scrubLine);
  warnMissingSecrets(rt, policy);
  const proxy = await startProxyServer(rt, listen);
  const addr = proxy.address();
  log.info('turret started', {
    listen: `${addr.address}:${addr.port}`,
    rules: policy.files,
    agents: [...policy.agents.keys()],
    secrets: [...policy.secrets.keys()],
    rule_count: policy.rules.length,
    ca: path.join(dir, 'ca.crt'),
    audit: auditPath,
  });

  let reloading = false;
  const reload = async (why: string): Promise<void> => {
    if (reloading) return;
    reloading = true;
    try {
      const next = await loadPolicy(rules);
      rt.install(next);
      metrics.reloads.inc({ result: 'ok' });
      log.info('rules reloaded', { why, files: next.files, rule_count: next.rules.length });
      warnMissingSecrets(rt, next);
    } catch (e) {
      metrics.reloads.inc({ result: 'failed' });
      const problems = e instanceof ConfigError ? e.message.split('\n') : [(e as Error).message];
      log.error('reload refused; the previous rules keep serving', { why, problems });
    } finally {
      reloading = false;
    }
  };
  process.on('SIGHUP', () => void reload('SIGHUP'));
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
    log.info('stopping', { signal: sig });
    await proxy.close();
    await rt.close();
    await rt.audit.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

function warnMissingSecrets(rt: Runtime, policy: Policy): void {
  for (const def of policy.secrets.values()) {
    if (!rt.secretValue(def)) {
      rt.log.warn('secret has no value; requests that need it will be refused', { secret: def.name, source: rt.values.describe(def.source) });
    }
  }
}
