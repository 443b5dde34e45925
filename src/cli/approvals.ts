/**
 * `turret approvals list | allow ID [--for 1h] | deny ID [--message TEXT]`: the console's
 * approvals page from a terminal, through the admin listener's /api/approvals (it needs the
 * admin token: --admin-token-file or TURRET_ADMIN_TOKEN; the listener: --admin or TURRET_ADMIN).
 */
import type { Approval } from '../proxy/approvals.js';
import { DEFAULT_ADMIN_LISTEN } from '../proxy/listen/admin.js';
import { out, parseListen, UsageError } from './common.js';
import { adminToken } from './start-ops.js';

export interface ApprovalsOptions {
  admin?: string;
  adminTokenFile?: string;
  for?: string;
  message?: string;
  as?: string;
}

/** What the API answers: the approval entries as JSON. */
type ApprovalJson = Approval;

function line(a: ApprovalJson): string {
  const when =
    a.state === 'pending'
      ? `waits until ${new Date(a.deadline).toISOString()}`
      : `${a.by ?? ''}${a.until ? ` until ${new Date(a.until).toISOString()}` : ''}${a.message ? `: ${a.message}` : ''}`;
  return [a.id, a.state, a.agent, `${a.method} ${a.scheme}://${a.host}:${a.port}${a.path}`, `${a.rule.name} (${a.rule.id})`, when].join('\t');
}

export async function approvalsCommand(action: string, id: string | undefined, o: ApprovalsOptions): Promise<void> {
  const token = await adminToken({ adminTokenFile: o.adminTokenFile });
  if (!token) throw new UsageError('turret approvals needs the admin token: --admin-token-file FILE or TURRET_ADMIN_TOKEN');
  const listen = parseListen(o.admin ?? process.env.TURRET_ADMIN ?? DEFAULT_ADMIN_LISTEN, '--admin');
  const base = `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}/api/approvals`;
  const call = async (url: string, body?: unknown): Promise<Record<string, unknown>> => {
    let r: Response;
    try {
      r = await fetch(url, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new Error(
        `cannot reach the admin listener at ${listen.host}:${listen.port} (${(e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message}); is turret start running, and is --admin right?`,
      );
    }
    const json = (await r.json().catch(() => ({}))) as Record<string, unknown>;
    if (!r.ok) {
      const msg = `${String(json.error ?? `HTTP ${r.status}`)}`;
      if (r.status === 400 || r.status === 404 || r.status === 409) throw new UsageError(msg);
      throw new Error(msg);
    }
    return json;
  };
  switch (action) {
    case 'list': {
      const r = await call(base);
      out(['ID', 'STATE', 'AGENT', 'REQUEST', 'RULE', 'WHEN'].join('\t'));
      for (const a of (r.approvals as ApprovalJson[]) ?? []) out(line(a));
      return;
    }
    case 'allow':
    case 'deny': {
      if (!id) throw new UsageError(`usage: turret approvals ${action} ID${action === 'allow' ? ' [--for 1h]' : ' [--message TEXT]'}`);
      const body =
        action === 'allow'
          ? { ...(o.for ? { for: String(o.for) } : {}), ...(o.as ? { by: o.as } : {}) }
          : { ...(o.message ? { message: String(o.message) } : {}), ...(o.as ? { by: o.as } : {}) };
      const r = await call(`${base}/${encodeURIComponent(id)}/${action}`, body);
      out(line(r.approval as ApprovalJson));
      return;
    }
    default:
      throw new UsageError(`unknown action "approvals ${action.slice(0, 40)}"; use: turret approvals list | allow ID [--for 1h] | deny ID [--message TEXT]`);
  }
}
