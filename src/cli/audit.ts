/** `turret audit verify FILE...`: check the hash chain of audit logs. */
import { verifyAuditFiles } from '../audit/verify.js';
import { out, UsageError } from './common.js';

export async function auditCommand(action: string, files: string[]): Promise<number> {
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
    default:
      throw new UsageError(`unknown action "audit ${action}"; use: turret audit verify FILE...`);
  }
}
