/**
 * Imports point one way (docs/architecture.md): cli → proxy → {policy, secrets, scrub, net, tls,
 * audit, metrics} → core. This reads every import statement under src/ and checks the arrows.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function moduleOf(file: string): string {
  const rel = path.relative(SRC, file);
  return rel.includes(path.sep) ? (rel.split(path.sep)[0] ?? '') : rel;
}

const edges: Array<{ from: string; to: string; file: string }> = [];
for (const f of files(SRC)) {
  const text = readFileSync(f, 'utf8');
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)) {
    const target = path.resolve(path.dirname(f), m[1] ?? '');
    edges.push({ from: moduleOf(f), to: moduleOf(target), file: path.relative(SRC, f) });
  }
}

it('found the import graph', () => {
  assert.ok(edges.length > 50, `only ${edges.length} imports found`);
});

it('nothing but main imports cli/', () => {
  const bad = edges.filter((e) => e.to === 'cli' && e.from !== 'cli' && e.from !== 'main.ts');
  assert.deepEqual(bad, []);
});

it('only cli/ imports proxy/', () => {
  const bad = edges.filter((e) => e.to === 'proxy' && e.from !== 'proxy' && e.from !== 'cli');
  assert.deepEqual(bad, []);
});

it('core/ imports no other module', () => {
  const bad = edges.filter((e) => e.from === 'core' && e.to !== 'core');
  assert.deepEqual(bad, []);
});

it('policy/ stays pure: no proxy, secrets, scrub, tls, audit or metrics', () => {
  const bad = edges.filter((e) => e.from === 'policy' && ['proxy', 'secrets', 'scrub', 'tls', 'audit', 'metrics', 'config', 'cli'].includes(e.to));
  assert.deepEqual(bad, []);
});

it('state/ sits between proxy and {policy, secrets}: only cli/ and proxy/ import it, and it imports neither', () => {
  const bad = edges.filter(
    (e) =>
      (e.to === 'state' && !['state', 'proxy', 'cli'].includes(e.from)) ||
      (e.from === 'state' && ['proxy', 'cli', 'config', 'scrub', 'tls', 'net', 'audit', 'metrics'].includes(e.to)),
  );
  assert.deepEqual(bad, []);
});
