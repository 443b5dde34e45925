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
import { cleanPairCount, knownClean, knownCleanPair, noteClean, noteCleanPair, scrubUnlessClean } from '../../src/proxy/clean-strings.js';
import { checkHead } from '../../src/proxy/stages/outbound.js';
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

/** The outbound detector's view: known values only, no token patterns (stages/scrubbing.ts known()). */
const detectorFor = (...values: string[]) =>
  compileScrubber({ secrets: values.map((value, i) => ({ name: `s${i}`, value, replacement: `[REDACTED:secret:s${i}]` })), patterns: [] });
const headFinds = (sc: ReturnType<typeof detectorFor>, raw: string[]): string | null => {
  let found: string | null = null;
  try {
    checkHead(sc, '/', raw, (f) => (found = f.secret));
  } catch (e) {
    assert.match((e as Error).message, /carries the value of secret/);
    assert.ok(found !== null);
    return found;
  }
  return null;
};
const formsOf = (s: string): string[] => [
  s,
  s.toUpperCase(),
  [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join(''),
  Buffer.from(s).toString('base64'),
  Buffer.from(`>>${s}??`).toString('base64url'),
  `Basic ${Buffer.from(`user:${s}`).toString('base64')}`,
];

it('header lines: a name known clean with one value is checked again for every other value, in every form and any case of the name', () => {
  const secret = fake();
  const sc = detectorFor(secret);
  for (const name of ['X-Note', 'x-note', 'X-NOTE', 'Authorization', 'authorization']) {
    for (const form of formsOf(secret)) {
      for (let i = 0; i < 2; i++) {
        assert.equal(headFinds(sc, [name, 'clean-1']), null);
        assert.equal(knownCleanPair(sc, name, 'clean-1'), true);
        assert.equal(headFinds(sc, [name, form]), 's0', `${name}: ${form}`);
        assert.equal(knownCleanPair(sc, name, form), false);
        // Beside clean lines, first or last.
        assert.equal(headFinds(sc, [name, 'clean-1', name, form]), 's0');
        assert.equal(headFinds(sc, [name, form, name, 'clean-1']), 's0');
      }
    }
  }
  // A name that is itself the secret, or carries half of it with the value the other half.
  assert.equal(headFinds(sc, [secret, '1']), 's0');
  assert.equal(headFinds(sc, [`X-${secret.toUpperCase()}`, 'clean-1']), 's0');
});

it('header lines: pairs that would make the same or a colliding concatenated line are kept apart', () => {
  const sc = detectorFor(fake());
  noteCleanPair(sc, 'a: b', 'c');
  assert.equal(knownCleanPair(sc, 'a: b', 'c'), true);
  for (const [n, v] of [
    ['a', 'b: c'],
    ['a:', 'b: c'],
    ['a: b:', 'c'],
    ['a: b: c', ''],
    ['', 'a: b: c'],
    ['a: bc', ''],
    ['a', 'b'],
    ['A: B', 'c'],
  ])
    assert.equal(knownCleanPair(sc, n ?? '', v ?? ''), false, `${n}|${v}`);
  // A secret split at a boundary a joined key could blur: `X: ab` + secret tail is one line to scan, never a hit on `X` + `ab`.
  const secret = fake();
  const d = detectorFor(secret);
  const cut = 9;
  assert.equal(headFinds(d, ['X', secret.slice(0, cut)]), null);
  assert.equal(headFinds(d, [`X: ${secret.slice(0, cut)}`, secret.slice(cut)]), null); // `X: fake_…: tail`: the secret is not in the line
  assert.equal(headFinds(d, ['X', `${secret.slice(0, cut)}${secret.slice(cut)}`]), 's0');
  assert.equal(headFinds(d, [`X-${secret.slice(0, cut)}`, 'y']), null);
  assert.equal(headFinds(d, [`X-${secret}`, 'y']), 's0');
});

it('header lines: many distinct clean lines stay within the bound, and a secret is found with the memo full', () => {
  const secret = fake();
  const sc = detectorFor(secret);
  let most = 0;
  for (let i = 0; i < 9000; i++) {
    assert.equal(headFinds(sc, [`X-H${i % 7}`, `v${i}`]), null);
    most = Math.max(most, cleanPairCount(sc));
  }
  assert.equal(most, 4096);
  assert.equal(headFinds(sc, ['X-H1', secret]), 's0');
  for (let i = 0; i < 5000; i++) noteCleanPair(sc, `N${i}`, 'v');
  assert.ok(cleanPairCount(sc) <= 4096);
  assert.equal(headFinds(sc, ['N4999', secret]), 's0');
});

it('header lines: not kept when long, not printable ASCII, or Proxy-Authorization; not carried to a detector for other values', () => {
  const secret = fake();
  const sc = detectorFor(fake());
  for (const [n, v] of [
    ['X-Long', 'x'.repeat(260)],
    ['X-Latin', 'caf\u00e9'],
    ['X-Tab', 'a\tb'],
    ['Proxy-Authorization', `Basic ${Buffer.from(`a:${secret}`).toString('base64')}`],
    ['PROXY-AUTHORIZATION', 'Basic eDp5'],
  ]) {
    assert.equal(headFinds(sc, [n ?? '', v ?? '']), null);
    assert.equal(knownCleanPair(sc, n ?? '', v ?? ''), false, n);
  }
  // The same lines, clean for the first detector, are found by the one a reload builds for the new value.
  assert.equal(headFinds(sc, ['X-Later', secret]), null);
  assert.equal(knownCleanPair(sc, 'X-Later', secret), true);
  const reloaded = detectorFor(secret);
  assert.equal(knownCleanPair(reloaded, 'X-Later', secret), false);
  assert.equal(headFinds(reloaded, ['X-Later', secret]), 's0');
  assert.equal(headFinds(reloaded, ['Proxy-Authorization', secret]), null);
});
