/** `turret ca init|export`: create the local CA, print its certificate. */
import { createCa, loadCa, caPaths } from '../tls/ca.js';
import { loadKeyRing } from '../secrets/keys.js';
import { caDir, out, UsageError, type CommonOptions } from './common.js';

export async function caCommand(action: string, o: CommonOptions & { force?: boolean }): Promise<void> {
  const dir = caDir(o);
  switch (action) {
    case 'init': {
      await createCa(dir, { force: o.force === true });
      await loadKeyRing(dir, true);
      out(`created CA in ${dir}: certificate ${caPaths(dir).cert} (share it with agents), key ${caPaths(dir).key} (mode 0600, never printed)`);
      return;
    }
    case 'export': {
      const ca = await loadCa(dir);
      process.stdout.write(ca.certPem);
      return;
    }
    default:
      throw new UsageError(`unknown action "ca ${action}"; use: turret ca init [--force] | turret ca export`);
  }
}
