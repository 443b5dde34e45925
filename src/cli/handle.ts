/** `turret handle issue`: print an opaque handle for an agent and a secret. */
import { loadPolicy } from '../config/load.js';
import { issueHandle, parseTtl } from '../secrets/handles.js';
import { loadKeyRing } from '../secrets/keys.js';
import { caDir, out, rulesDir, UsageError, type CommonOptions } from './common.js';

export interface HandleOptions extends CommonOptions {
  agent?: string;
  secret?: string;
  ttl?: string;
}

export async function handleCommand(action: string, o: HandleOptions): Promise<void> {
  switch (action) {
    case 'issue': {
      if (!o.agent || !o.secret) throw new UsageError('turret handle issue needs --agent NAME and --secret NAME');
      const ttl = parseTtl(String(o.ttl ?? '8h'));
      if (ttl === null) throw new UsageError(`--ttl must be a duration like 30m, 8h or 2d (at most 366d), got "${o.ttl}"`);
      const policy = await loadPolicy(rulesDir(o));
      if (!policy.agents.has(o.agent)) throw new UsageError(`agent "${o.agent}" is not defined in the rules`);
      if (!policy.secrets.has(o.secret)) throw new UsageError(`secret "${o.secret}" is not defined in the rules`);
      const ring = await loadKeyRing(caDir(o), true);
      const { handle } = issueHandle(ring, { agent: o.agent, secret: o.secret, ttlSeconds: ttl });
      out(handle);
      return;
    }
    default:
      throw new UsageError(`unknown action "handle ${action}"; use: turret handle issue --agent A --secret S [--ttl 8h]`);
  }
}
