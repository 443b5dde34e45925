// `turret start` fixes V8's old-generation growth factor at run time (src/cli/heap.ts): the flag
// takes effect in a running process, and an operator's own setting is left alone.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { HEAP_GROWING_PERCENT, tuneHeapGrowth } from '../../src/cli/heap.js';

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
