/**
 * The CLI's exit codes (0 ok, 1 runtime failure, 2 bad usage or configuration) come from the
 * errors themselves; the version is package.json's; and settings.upstream_ca_file is checked by
 * the loader, so `rules check` and `start` refuse the same file with the same file:line.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { makeDirs, ROOT, runCli } from '../helpers/turret.js';

describe('CLI exit codes and version', () => {
  it('prints the version from package.json', async () => {
    const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runCli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`turret/${version} `), r.stdout);
  });

  it('exits 2 for an unknown option and for a missing argument (cac errors are usage errors)', async () => {
    const unknown = await runCli(['rules', 'check', '--bogus-flag']);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /^turret: Unknown option `--bogusFlag`/);
    const missing = await runCli(['rules']);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /^turret: missing required args/);
  });

  it('refuses an unreadable or certificate-less upstream_ca_file in rules check and start alike, with file:line', async () => {
    for (const [ca, why] of [
      ['certs/nowhere.pem', /CA file "certs\/nowhere\.pem" cannot be read/],
      [path.join(ROOT, 'test/fixtures/upstream-ca.key'), /holds no PEM certificate/],
    ] as const) {
      const d = makeDirs({ 'r.yaml': `agents: [{ name: a }]\nsettings:\n  upstream_ca_file: ${JSON.stringify(ca)}\n` });
      const args = ['--rules', d.rulesDir, '--ca', d.caDir];
      const check = await runCli(['rules', 'check', ...args], { cwd: d.dir });
      const start = await runCli(['start', '--listen', '127.0.0.1:0', ...args], { cwd: d.dir });
      for (const r of [check, start]) {
        assert.equal(r.code, 2, r.stdout + r.stderr);
        assert.match(r.stderr, /r\.yaml:3:21: settings\.upstream_ca_file: /);
        assert.match(r.stderr, why);
      }
    }
  });
});
