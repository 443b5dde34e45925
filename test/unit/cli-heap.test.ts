// `turret start` fixes V8's old-generation growth factor at run time (src/cli/heap.ts): the flag
// takes effect in a running process, and an operator's own setting is left alone.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';
import { HEAP_GROWING_PERCENT, semiSpaceMb, tuneHeapGrowth, workerExecArgv, YOUNG_GENERATION_FLAG } from '../../src/cli/heap.js';

const HEAP_TS = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/heap.ts')).href;

/** Runs a child that (maybe) tunes the heap, forces one full collection, and prints V8's limit lines. */
function limitsAfterFullGc(tune: boolean, nodeArgs: string[] = []): string[] {
  const code = `${tune ? `const { tuneHeapGrowth } = await import(${JSON.stringify(HEAP_TS)}); tuneHeapGrowth();` : ''} globalThis.gc();`;
  const r = spawnSync(process.execPath, [...nodeArgs, '--import', 'tsx', '--expose-gc', '--trace-gc-verbose', '--input-type=module', '-e', code], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l.includes('[HeapController] Limit:'));
}

it('sets the growth factor at run time: the next full collection uses 1 + percent/100', () => {
  const lines = limitsAfterFullGc(true);
  assert.ok(lines.length > 0, 'V8 printed no limit line');
  const factor = (1 + HEAP_GROWING_PERCENT / 100).toFixed(1);
  assert.match(lines[lines.length - 1] ?? '', new RegExp(`\\(${factor.replace('.', '\\.')}\\)$`));
});

it("leaves an operator's own --heap-growing-percent alone", () => {
  assert.equal(tuneHeapGrowth(['--heap-growing-percent=50']), false);
  assert.equal(tuneHeapGrowth(['--max-old-space-size=512', '--heap_growing_percent=50']), false);
  // The operator's value is the one V8 uses.
  const lines = limitsAfterFullGc(true, ['--heap-growing-percent=50']);
  assert.match(lines[lines.length - 1] ?? '', /\(1\.5\)$/);
});

// The young generation's ceiling (heap.ts): V8 reads it only at start-up, so it lives on the
// launchers; the start-up summary says which one this process got.
it('reads the semi-space ceiling from every spelling node accepts, the command line winning over NODE_OPTIONS', () => {
  assert.equal(semiSpaceMb([], ''), 'default');
  assert.equal(semiSpaceMb(['--max-semi-space-size=64'], ''), 64);
  assert.equal(semiSpaceMb(['--max_semi_space_size=8'], ''), 8);
  assert.equal(semiSpaceMb(['--max-semi-space-size', '48'], ''), 48);
  assert.equal(semiSpaceMb([], '--max-semi-space-size=32'), 32);
  assert.equal(semiSpaceMb([], '  --inspect=0   --max_semi_space_size=24 '), 24);
  assert.equal(semiSpaceMb(['--max-semi-space-size=16'], '--max-semi-space-size=128'), 16);
  // Look-alikes are not it; 0 is V8's "choose yourself".
  assert.equal(semiSpaceMb(['--min-semi-space-size=64', '--max-old-space-size=64', '--max-semi-space-size=0'], '--semi-space-growth-factor=4'), 'default');
  assert.equal(semiSpaceMb(['--max-semi-space-size=abc'], ''), 'default');
});

it('adds the ceiling to the workers it forks unless the operator chose one', () => {
  assert.deepEqual(workerExecArgv(['--enable-source-maps'], ''), ['--enable-source-maps', YOUNG_GENERATION_FLAG]);
  assert.deepEqual(workerExecArgv(['--max_semi_space_size=8'], ''), ['--max_semi_space_size=8']);
  assert.deepEqual(workerExecArgv([], '--max-semi-space-size=32'), []);
});

it('every launcher starts node with the same ceiling', () => {
  const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const read = (f: string): string => readFileSync(path.join(root, f), 'utf8');
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, `node ${YOUNG_GENERATION_FLAG} dist/main.js start`);
  assert.equal(read('src/main.ts').split('\n')[0], `#!/usr/bin/env -S node ${YOUNG_GENERATION_FLAG}`);
  assert.match(read('Dockerfile'), new RegExp(`^ENTRYPOINT \\["node", "${YOUNG_GENERATION_FLAG}", "/app/dist/main.js"\\]$`, 'm'));
  assert.match(read('deploy/systemd/turret.service'), new RegExp(`^ExecStart=/usr/bin/node ${YOUNG_GENERATION_FLAG} /opt/turret/dist/main.js start`, 'm'));
  assert.match(read('deploy/k8s/deployment.yaml'), new RegExp(`- node\\n\\s+- ${YOUNG_GENERATION_FLAG} #[^\\n]*\\n\\s+- /app/dist/main.js\\n`));
});
