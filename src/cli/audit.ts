/**
 * `turret audit verify FILE...`: check the hash chain of audit logs.
 * `turret audit tail [--follow] [--agent A] [--decision D] FILE`: print records (as written, so
 * the output can still be verified or piped to jq), filtered; --follow keeps going across
 * rotation until SIGINT/SIGTERM, then exits 0.
 */
import { tailAudit } from '../audit/tail.js';
import { verifyAuditFiles } from '../audit/verify.js';
import { isTurretError } from '../core/errors.js';
import { out, UsageError } from './common.js';

export interface AuditOptions {
  follow?: boolean;
  agent?: string;
  decision?: string;
}

async function tail(files: string[], o: AuditOptions): Promise<number> {
  if (files.length !== 1) throw new UsageError('turret audit tail needs exactly one FILE');
  const file = files[0] as string;
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await tailAudit({
      path: file,
      follow: o.follow === true,
      agent: o.agent === undefined ? undefined : String(o.agent),
      decision: o.decision === undefined ? undefined : String(o.decision),
      out,
      signal: ac.signal,
    });
    return 0;
  } catch (e) {
    // tailAudit reports a bad --decision as a TurretError; a missing file as ENOENT.
    if (isTurretError(e)) throw new UsageError(e.reason);
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`no audit log at ${file} (use --follow to wait for it)`);
    throw e;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

export async function auditCommand(action: string, files: string[], o: AuditOptions = {}): Promise<number> {
  switch (action) {
    case 'verify': {
      if (files.length === 0) throw new UsageError('turret audit verify needs at least one FILE');
      const r = await verifyAuditFiles(files);
      if (r.ok) {
        out(`ok: ${r.records} record(s), chain intact`);
        return 0;
      }
      const p = r.problem;
      out(p ? `${p.file}:${p.line}: ${p.kind}: ${p.detail}` : 'chain broken');
      return 1;
    }
    case 'tail':
      return tail(files, o);
    default:
      throw new UsageError(`unknown action "audit ${action}"; use: turret audit verify FILE... | turret audit tail [--follow] [--agent A] [--decision D] FILE`);
  }
}
