/**
 * `turret audit verify FILE...`: check the hash chain of audit logs (every worker's chain when
 * `turret start --workers N` wrote one per process: audit/chains.ts).
 * `turret audit tail [--follow] [--agent A] [--decision D] FILE`: print records (as written, so
 * the output can still be verified or piped to jq), filtered; --follow keeps going across
 * rotation until SIGINT/SIGTERM, then exits 0.
 */
import { tailAudit } from '../audit/tail.js';
import { verifyAuditChains } from '../audit/chains.js';
import type { VerifyResult } from '../audit/verify.js';
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

/**
 * Where an intact chain starts and ends (docs/operations.md): records cut or lost before the first
 * line look like rotated-out files, so the start is spelled out rather than passed over in silence,
 * and the last hash is what an operator anchors elsewhere.
 */
function span(r: VerifyResult): string {
  if (r.first === undefined || r.last === undefined) return '';
  const start = r.startsAtGenesis === true ? '' : `; the chain starts at seq ${r.first.seq}: records 1 to ${r.first.seq - 1} were rotated out, or lost`;
  return `, seq ${r.first.seq} to ${r.last.seq}, last hash ${r.last.hash}${start}`;
}

export async function auditCommand(action: string, files: string[], o: AuditOptions = {}): Promise<number> {
  switch (action) {
    case 'verify': {
      if (files.length === 0) throw new UsageError('turret audit verify needs at least one FILE');
      // One chain per process with --workers: audit.jsonl also means audit.w1.jsonl, audit.w2.jsonl …
      const chains = await verifyAuditChains(files);
      const many = chains.length > 1;
      for (const r of chains) {
        const p = r.problem;
        if (r.ok) out(`ok: ${many ? `${r.chain}: ` : ''}${r.records} record(s), chain intact${span(r)}`);
        else out(p ? `${p.file}:${p.line}: ${p.kind}: ${p.detail}` : `${r.chain}: chain broken`);
      }
      return chains.every((r) => r.ok) ? 0 : 1;
    }
    case 'tail':
      return tail(files, o);
    default:
      throw new UsageError(`unknown action "audit ${action}"; use: turret audit verify FILE... | turret audit tail [--follow] [--agent A] [--decision D] FILE`);
  }
}
