/**
 * The operational options of `turret start` (admin listener, token, production mode, drain,
 * limits) and the small facts start.ts gathers for the production checks. Kept apart so
 * start.ts stays the wiring of one start.
 */
import { readFile, stat } from 'node:fs/promises';
import type { AuditSink } from '../audit/writer.js';
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
      metrics.auditRecords.inc({ event: rec.event, outcome: rec.outcome });
    },
    close: () => sink.close(),
  };
}
