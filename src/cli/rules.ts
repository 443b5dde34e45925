/** `turret rules check`: the same loader `start` uses, without starting anything. */
import { loadPolicy } from '../config/load.js';
import { out, rulesDir, UsageError, type CommonOptions } from './common.js';

export async function rulesCommand(action: string, o: CommonOptions): Promise<void> {
  switch (action) {
    case 'check': {
      const dir = rulesDir(o);
      const p = await loadPolicy(dir);
      out(`ok: ${p.files.length} file(s), ${p.agents.size} agent(s), ${p.secrets.size} secret(s), ${p.rules.length} rule(s) in ${dir}`);
      return;
    }
    default:
      throw new UsageError(`unknown action "rules ${action}"; use: turret rules check`);
  }
}
