/**
 * Golden files for rule loading (caddy's model): test/golden/rules/NAME.txt holds a rule file,
 * a line `----`, and the exact expected output: every problem as `file:line:col: path: message`,
 * or `ok: …` for a file that loads. A regression test is a new file. UPDATE_GOLDEN=1 rewrites the
 * expectations (review the diff before committing).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compilePolicy } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/yaml.js';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../golden/rules');
const SEP = '\n----\n';
const NOW = Date.parse('2026-01-01T00:00:00Z');

function render(input: string): string {
  // A file may hold several rule files, separated by "# file: NAME" lines (cross-file checks).
  const parts = input.split(/^# file: (\S+)\n/m);
  const sources = parts.length === 1 ? [{ file: 'test.yaml', text: input }] : [];
  for (let i = 1; i < parts.length; i += 2) sources.push({ file: parts[i] ?? '', text: parts[i + 1] ?? '' });
  try {
    const p = compilePolicy(sources, NOW);
    return `ok: ${p.agents.size} agent(s), ${p.secrets.size} secret(s), ${p.rules.length} rule(s), ${p.limits.length} limit(s), ${p.examples.length} example(s)`;
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
}

describe('golden rule files', () => {
  const files = readdirSync(DIR)
    .filter((f) => f.endsWith('.txt'))
    .sort();
  it('has golden files', () => assert.ok(files.length > 40, `${files.length} files`));
  for (const f of files) {
    it(f, () => {
      const text = readFileSync(path.join(DIR, f), 'utf8');
      const i = text.indexOf(SEP);
      assert.ok(i >= 0, `${f} needs a "----" line between input and expected output`);
      const input = text.slice(0, i + 1);
      const got = render(input);
      if (process.env.UPDATE_GOLDEN === '1') writeFileSync(path.join(DIR, f), `${input.slice(0, -1)}${SEP}${got}\n`);
      else assert.equal(got, text.slice(i + SEP.length).replace(/\n$/, ''));
    });
  }
});
