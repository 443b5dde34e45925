/**
 * The clean-string memo (proxy/clean-strings.ts) lets a scrubber skip strings it already found
 * nothing in. What it must never do: skip a string that carries a secret (for the scrubber that
 * knows it), carry a verdict over to a scrubber built for other values, or keep strings whose
 * verdict depends on more than the text (handle-shaped runs) or on how the bytes are read.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { builtinPatterns } from '../../src/proxy/stages/scrubbing.js';
import { knownClean, noteClean, scrubUnlessClean } from '../../src/proxy/clean-strings.js';
import { scrubJson } from '../../src/scrub/json.js';

const fake = (): string => `fake_${randomBytes(16).toString('hex')}`;
const scrubberFor = (value: string) => compileScrubber({ secrets: [{ name: 's', value, replacement: '[REDACTED:secret:s]' }], patterns: builtinPatterns() });
const text = (sc: ReturnType<typeof scrubberFor>) => (t: string) => sc.scrubString(t).text;

it('a string with a secret is scrubbed every time and never remembered as clean', () => {
  const secret = fake();
  const sc = scrubberFor(secret);
  const line = `reason: upstream said ${secret}`;
  for (let i = 0; i < 3; i++) {
    const out = scrubUnlessClean(sc, line, text(sc));
    assert.ok(!out.includes(secret));
    assert.ok(out.includes('[REDACTED:secret:s]'));
    assert.equal(knownClean(sc, line), false);
  }
});

it('a clean string is remembered per scrubber: a scrubber for a new secret value scans it again', () => {
  const old = fake();
  const rotated = fake();
  const line = `path /x/${rotated}`;
  const a = scrubberFor(old);
  assert.equal(scrubUnlessClean(a, line, text(a)), line);
  assert.equal(knownClean(a, line), true);
  const b = scrubberFor(rotated);
  assert.equal(knownClean(b, line), false);
  const out = scrubUnlessClean(b, line, text(b));
  assert.ok(!out.includes(rotated));
});

it('handle-shaped, non-ASCII and long strings are never remembered', () => {
  const sc = scrubberFor(fake());
  for (const s of [`trt_${'A'.repeat(44)}`, 'caf\u00e9 clean', 'tab\there', 'x'.repeat(300)]) {
    noteClean(sc, s);
    assert.equal(knownClean(sc, s), false, s.slice(0, 20));
  }
  noteClean(sc, 'application/json');
  assert.equal(knownClean(sc, 'application/json'), true);
});

it('an audit-shaped record keeps every secret out, keys and values, on the first and the repeated pass', () => {
  const secret = fake();
  const sc = scrubberFor(secret);
  const f = (s: string): string => scrubUnlessClean(sc, s, text(sc));
  const rec = { event: 'request', host: 'api.example.test', reason: `quoted ${secret}`, [`k${secret}`]: 1, nested: { list: ['ok', secret] } };
  for (let i = 0; i < 3; i++) {
    const out = JSON.stringify(scrubJson(rec, f));
    assert.ok(!out.includes(secret), out);
    assert.ok(out.includes('"host":"api.example.test"'));
  }
});
