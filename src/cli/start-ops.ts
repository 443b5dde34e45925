/**
 * The operational options of `turret start` (admin listener, token, production mode, drain,
 * limits) and the small facts start.ts gathers for the production checks. Kept apart so
 * start.ts stays the wiring of one start.
 */
import { readFile, stat } from 'node:fs/promises';
import type { AuditSink } from '../audit/writer.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Policy } from '../policy/types.js';
import { expectedToken } from '../proxy/stages/identify.js';
import type { Runtime } from '../proxy/runtime.js';
import { UsageError } from './common.js';
import { parseDurationMs } from './limits.js';

export interface OpsOptions {
  /** HOST:PORT or "off" (env TURRET_ADMIN, default 127.0.0.1:8751). */
  admin?: string;
  adminTokenFile?: string;
  production?: boolean;
  /** e.g. "30s" (env TURRET_DRAIN_TIMEOUT). */
  drainTimeout?: string;
  /** NAME=VALUE, repeatable (cli/limits.ts). */
  limit?: string | string[];
}

export const DEFAULT_DRAIN_MS = 30_000;

export function parseDrainTimeout(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const raw = flag ?? env.TURRET_DRAIN_TIMEOUT;
  if (raw === undefined) return DEFAULT_DRAIN_MS;
  const ms = parseDurationMs(String(raw));
  if (ms === null) throw new UsageError(`--drain-timeout must be a duration such as 30s or 2m, got "${String(raw).slice(0, 40)}"`);
  return ms;
}

/**
 * The admin bearer token: --admin-token-file (first line, trimmed) or TURRET_ADMIN_TOKEN.
 * A file that others can read is refused like a world-readable key would be in production,
 * but it is simply an error here: a token file is created for this purpose only.
 */
export async function adminToken(o: OpsOptions, env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  let raw: string | undefined;
  if (o.adminTokenFile) {
    try {
      raw = (await readFile(o.adminTokenFile, 'utf8')).split('\n')[0];
    } catch (e) {
      throw new UsageError(`--admin-token-file ${o.adminTokenFile} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (!raw?.trim()) throw new UsageError(`--admin-token-file ${o.adminTokenFile} is empty`);
  } else {
    raw = env.TURRET_ADMIN_TOKEN;
  }
  const t = raw?.trim();
  return t ? t : null;
}

export async function fileMode(file: string): Promise<number | null> {
  try {
    return (await stat(file)).mode & 0o777;
  } catch {
    return null;
  }
}

/** Whether each agent can authenticate: a derived credential always can; a token source must yield a value. */
export function agentCredentials(rt: Runtime, policy: Policy): Array<{ name: string; hasCredential: boolean }> {
  return [...policy.agents.keys()].map((name) => ({ name, hasCredential: expectedToken(policy, rt.ring, rt.values, name) !== null }));
}

/**
 * cac turns a repeated option into an array; for single-valued options the last one wins (as
 * with most CLIs), so `--admin X` appended to a wrapper's defaults simply overrides them.
 */
export function lastWins<T extends object>(o: T, repeatable: readonly string[] = ['limit']): T {
  const out = { ...o } as Record<string, unknown>;
  for (const [k, v] of Object.entries(out)) {
    if (Array.isArray(v) && !repeatable.includes(k)) out[k] = v.at(-1);
  }
  return out as T;
}

/** Counts records into turret_audit_records_total as they are handed to the sink. */
export function countedSink(sink: AuditSink, metrics: Metrics): AuditSink {
  return {
    write: (rec) => {
      sink.write(rec);
      metrics.auditRecords.at(rec.event, rec.outcome).inc();
    },
    close: () => sink.close(),
  };
}

/** The least time the audit log gets to write what it holds at shutdown, whatever --drain-timeout says. */
export const AUDIT_CLOSE_MIN_MS = 5_000;

/**
 * Closes the audit log at shutdown within a deadline: the drain timeout again, at least
 * AUDIT_CLOSE_MIN_MS. Why a deadline: a disk that never takes the records (a FIFO nobody reads, a
 * hung network mount) would otherwise keep the process alive forever after SIGTERM. 'ok': closed
 * with every record written; 'failed': closed, but records were lost (logged); 'stuck': the writer
 * thread is still blocked inside the file system after the deadline (logged). A stuck thread
 * cannot be stopped: Node's exit joins worker threads, so process.exit() would hang too; the
 * caller ends the process with SIGKILL (docs/operations.md, "Shutdown with a stalled disk").
 */
export async function closeAuditBy(audit: AuditSink, drainMs: number, log: Logger): Promise<'ok' | 'failed' | 'stuck'> {
  const ms = Math.max(drainMs, AUDIT_CLOSE_MIN_MS);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'stuck'>((resolve) => (timer = setTimeout(() => resolve('stuck'), ms)));
  const closed = audit.close().then(
    () => 'ok' as const,
    (e: Error) => e,
  );
  const r = await Promise.race([closed, deadline]);
  clearTimeout(timer);
  if (r === 'ok') return 'ok';
  if (r === 'stuck') {
    log.error(
      'audit log did not finish writing before the shutdown deadline; the records not yet on disk are lost (turret audit verify shows where the log ends); the writer thread is blocked in the file system, so the process ends with SIGKILL',
      { waited_ms: ms },
    );
    return 'stuck';
  }
  log.error('audit log close failed', { error: r.message });
  return 'failed';
}
