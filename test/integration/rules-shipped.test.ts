/** The shipped rules/ directory: checks clean (examples included) and starts on a fresh machine with no env vars. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, startTurret } from '../helpers/turret.js';

describe('shipped rules', () => {
  it('turret start runs with them and no environment; rules check runs their examples', async () => {
    const dir = path.join(ROOT, 'rules');
    const rules = Object.fromEntries(
      readdirSync(dir)
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => [f, readFileSync(path.join(dir, f), 'utf8')]),
    );
    assert.ok(rules['default.yaml'] && rules['github-read-only.yaml']);
    const t = await startTurret({ rules });
    try {
      const r = await t.cli(['rules', 'check']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /ok: 2 file\(s\), 2 agent\(s\), .* [1-9]\d* example\(s\) passed/);
      const x = await t.cli(['rules', 'explain', '--agent', 'reviewer', 'POST', 'https://github.com/o/r.git/git-receive-pack']);
      assert.match(x.stdout, /^decision: deny/m);
      assert.match(x.stdout, /git push \(receive-pack\)/);
    } finally {
      await t.stop();
    }
  });
});
