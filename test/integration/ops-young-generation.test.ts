/**
 * V8's young-generation ceiling (src/cli/heap.ts) reaches a real Turret through its launchers: the
 * installed bin's shebang (`env -S node --max-semi-space-size=…`), and a primary's forked workers;
 * a bare `node dist/main.js start` runs with V8's default. The start-up summary's
 * `max_semi_space_mb` says which one each process got; a flag node refuses stops the start with
 * node's own error.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SEMI_SPACE_MB } from '../../src/cli/heap.js';
import { startTurret, until, type TurretProc } from '../helpers/turret.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../dist/main.js');
const RULES: RuleFile = { agents: ['a'], rules: [{ name: 'r', methods: ['read'], hosts: ['x.turret.test:*'], unsafe_addresses: LOOPBACK }] };

/** Every start-up summary a process (or its workers) logged, as the value of max_semi_space_mb. */
const ceilings = (t: TurretProc): unknown[] =>
  t
    .stderr()
    .split('\n')
    .filter((l) => l.includes('"msg":"turret started"'))
    .map((l) => (JSON.parse(l) as { max_semi_space_mb?: unknown }).max_semi_space_mb);

describe('the young-generation ceiling a Turret process starts with', () => {
  const started: TurretProc[] = [];
  const start = async (o: Parameters<typeof startTurret>[0]): Promise<TurretProc> => {
    const t = await startTurret(o);
    started.push(t);
    return t;
  };
  after(async () => {
    for (const t of started) {
      await t.stop();
      rmSync(t.dir, { recursive: true, force: true });
    }
  });

  it('the bin run as an executable, as npm installs it: its shebang gives node the ceiling', async () => {
    // npm marks a package's bin executable when it installs or links it; tsc writes it 0644.
    chmodSync(MAIN, statSync(MAIN).mode | 0o111);
    // env -S finds `node` on PATH: make it this test's node.
    const t = await start({ rules: { 'r.yaml': RULES }, bin: true, env: { PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` } });
    assert.deepEqual(ceilings(t), [SEMI_SPACE_MB]);
  });

  it("bare `node dist/main.js start` has V8's default, and says so", async () => {
    const t = await start({ rules: { 'r.yaml': RULES } });
    assert.deepEqual(ceilings(t), ['default']);
  });

  it("an operator's NODE_OPTIONS ceiling is the one reported", async () => {
    const t = await start({ rules: { 'r.yaml': RULES }, env: { NODE_OPTIONS: '--max-semi-space-size=8' } });
    assert.deepEqual(ceilings(t), [8]);
  });

  it('workers forked by a primary started without it get the ceiling; one chosen on the command line is kept', async () => {
    const plain = await start({ rules: { 'r.yaml': RULES }, args: ['--workers', '2', '--no-watch'], startTimeoutMs: 60_000 });
    await until(() => ceilings(plain).length === 2, 'both workers started', 30_000);
    assert.deepEqual(ceilings(plain), [SEMI_SPACE_MB, SEMI_SPACE_MB]);
    const own = await start({ rules: { 'r.yaml': RULES }, node: ['--max-semi-space-size=4'], args: ['--workers', '2', '--no-watch'], startTimeoutMs: 60_000 });
    await until(() => ceilings(own).length === 2, 'both workers started', 30_000);
    assert.deepEqual(ceilings(own), [4, 4]);
  });

  it('a ceiling node refuses stops the start with node’s own error, before any listener', () => {
    const r = spawnSync(process.execPath, ['--max-semi-space-size=lots', MAIN, 'start'], { encoding: 'utf8', timeout: 30_000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /max-semi-space-size/);
    assert.doesNotMatch(r.stderr, /turret started/);
  });
});
