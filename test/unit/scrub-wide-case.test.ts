/**
 * A known secret with non-ASCII characters, its ASCII letters upper- or lower-cased by the
 * upstream: docs/scrubbing.md promises the raw value "matched ignoring ASCII case". Its UTF-8
 * form has non-ASCII bytes, so it is not in the keyword index but searched with indexOf
 * (byte-needles.ts), which was an exact search: `FAKEé€…` for `fakeé€…` passed unscrubbed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Matcher } from '../../src/scrub/matcher.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';

const flip = (t: string, f: (i: number) => boolean): string =>
  [...t].map((c, i) => (/[a-z]/i.test(c) && f(i) ? (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) : c)).join('');

test('a non-ASCII secret in any ASCII case is redacted (one call, long bodies, streamed)', () => {
  const hex = randomBytes(6).toString('hex');
  const values = [`fakeé€${hex}`, `Pässwörd_${hex}x`, `${hex}🔑key`, `é${hex}`, `${hex}é`, 'ü'];
  const s = compileScrubber({ secrets: values.map((value, i) => ({ name: `w${i}`, value, replacement: `[W${i}]` })), patterns: compilePatterns(BUILTIN_PATTERNS) });
  for (const [i, value] of values.entries()) {
    for (const spelled of [value, value.replace(/[a-z]+/g, (m) => m.toUpperCase()), flip(value, (k) => k % 2 === 0), flip(value, (k) => k % 3 === 1)]) {
      for (const pad of [0, 1, 3000]) {
        const body = Buffer.from(`${'.'.repeat(pad)}"${spelled}"${'.'.repeat(pad)}`, 'utf8');
        const out = s.scrubBuffer(body).buf.toString('utf8');
        assert.ok(out.includes(`[W${i}]`) && !out.toLowerCase().includes(value.toLowerCase()), `${JSON.stringify(spelled)} with ${pad} bytes around: ${out.slice(pad, pad + 60)}`);
        const inc = s.createIncremental();
        const cut = pad + 3;
        const streamed = Buffer.concat([inc.write(body.subarray(0, cut)), inc.write(body.subarray(cut)), inc.end()]).toString('utf8');
        assert.equal(streamed, out, `${JSON.stringify(spelled)} streamed`);
      }
    }
  }
});

test('the caseless search of a non-ASCII form: every start, from, overlaps and the buffer ends', () => {
  const value = 'aé';
  const m = new Matcher([{ name: 'w', value, replacement: 'W' }], [], 1024);
  const raw = Buffer.from(value, 'utf8');
  for (const text of ['AéAé', 'aéaé', 'xAé', 'Aéx', 'A', 'é', 'éAé']) {
    const buf = Buffer.from(text, 'utf8');
    for (let from = 0; from <= buf.length; from++) {
      const want: number[] = [];
      for (let i = from; i + raw.length <= buf.length; i++) if (buf.subarray(i, i + raw.length).every((b, k) => (b >= 0x41 && b <= 0x5a ? b | 0x20 : b) === raw[k])) want.push(i);
      const got = m
        .find(buf, from)
        .filter((c) => c.end - c.start === raw.length)
        .map((c) => c.start);
      assert.deepEqual(got, want, `${text} from ${from}`);
    }
  }
});

test('mixed spellings of a non-ASCII secret (part escaped, part literal) are decoded and redacted', () => {
  // The decoded finder lower-cased its needle as latin1 text, which also changed UTF-8 lead
  // bytes (Ã 0xC3 → ã 0xE3): no decoded run of a secret with é, ü, ä, Cyrillic … ever matched.
  const hex = randomBytes(5).toString('hex');
  const value = `fakeé€${hex}`;
  const s = compileScrubber({ secrets: [{ name: 'w', value, replacement: '[W]' }], patterns: compilePatterns(BUILTIN_PATTERNS) });
  const spellings = [
    `fake%C3%A9€${hex}`,
    `fakeé€${hex.slice(0, 4)}%${hex.charCodeAt(4).toString(16)}${hex.slice(5)}`,
    `fake&#233;€${hex}`,
    `fakeé\\u20ac${hex}`,
    `FAKE%c3%a9&#x20AC;${hex.toUpperCase()}`,
    `Fake\\u00e9€${hex}`,
  ];
  for (const spelled of spellings) {
    for (const pad of [0, 2000]) {
      const body = Buffer.from(`${' '.repeat(pad)}x ${spelled} y${' '.repeat(pad)}`, 'utf8');
      const out = s.scrubBuffer(body).buf.toString('utf8').trim();
      assert.equal(out, 'x [W] y', `${spelled} (${pad} bytes around)`);
    }
  }
});

test('an operator pattern whose keyword has non-ASCII capitals fires on its own spelling and its case variants', () => {
  // Keywords were lower-cased with Unicode rules (Пароль → пароль) and then compared as bytes
  // ignoring ASCII case only: the text `Пароль: …` never reached the regex, which matched it.
  const s = compileScrubber({
    secrets: [],
    patterns: compilePatterns([
      { id: 'ru', regex: '(?i)пароль: (\\S+)', keywords: ['Пароль'] },
      { id: 'de', regex: 'ÄPFEL-([0-9a-f]{12})', keywords: ['ÄPFEL-'] },
    ]),
  });
  const tok = randomBytes(6).toString('hex');
  for (const [text, id] of [
    [`x Пароль: ${tok} y`, 'ru'],
    [`x пароль: ${tok} y`, 'ru'],
    [`x ПАРОЛЬ: ${tok} y`, 'ru'],
    [`x ÄPFEL-${tok} y`, 'de'],
  ] as const) {
    for (const pad of [0, 2000]) {
      const out = s.scrubBuffer(Buffer.from(`${' '.repeat(pad)}${text}`, 'utf8')).buf.toString('utf8');
      assert.ok(!out.includes(tok) && out.includes(`[REDACTED:${id}]`), `${text} (${pad}): ${out.trim()}`);
    }
  }
});

test("a secret with an astral character (emoji) in PHP's json_encode spelling: \\/ and surrogate pairs", () => {
  // PHP escapes `/` as `\/` and non-ASCII as \uXXXX, astral characters as a surrogate pair: no
  // listed form, so the escaped-run decoder must read the pair as one character (it read each
  // half alone, as U+FFFD, and the secret passed).
  const value = `pw/🔑${randomBytes(5).toString('hex')}`;
  const s = compileScrubber({ secrets: [{ name: 'w', value, replacement: '[W]' }], patterns: [] });
  const php = JSON.stringify(value)
    .slice(1, -1)
    .replace(/\//g, '\\/')
    .replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  for (const spelled of [php, php.toUpperCase().replace('\\U', '\\u').replace('\\U', '\\u'), php.replace('\\/', '%2F')]) {
    for (const pad of [0, 2000]) {
      const out = s
        .scrubBuffer(Buffer.from(`${' '.repeat(pad)}x ${spelled} y`, 'latin1'))
        .buf.toString('latin1')
        .trim();
      assert.equal(out, 'x [W] y', `${spelled} (${pad})`);
    }
  }
  // A lone surrogate half decodes as before (U+FFFD) and does not swallow what follows.
  const lone = compileScrubber({ secrets: [{ name: 'l', value: 'ab\ufffdcd0123', replacement: '[L]' }], patterns: [] });
  assert.equal(lone.scrubBuffer(Buffer.from('x ab\\ud83dcd0123 y', 'latin1')).buf.toString('latin1'), 'x [L] y');
});

test('a periodic non-ASCII secret repeated in the body: every occurrence is found, not one per secret length', () => {
  // The byte search resumed a whole secret length after each find, so with `é1é1é1é1` sent
  // six times over the occurrences in between were skipped and `é1é1` (one period, which spells
  // the whole secret) went out after the marker. The keyword index reports every start.
  const value = 'é1é1é1é1';
  const s = compileScrubber({ secrets: [{ name: 'w', value, replacement: '[W]' }], patterns: [] });
  for (const reps of [5, 6, 7, 9]) {
    for (const pad of [0, 2000]) {
      const out = s
        .scrubBuffer(Buffer.from(`${' '.repeat(pad)}x ${'é1'.repeat(reps)} y`, 'utf8'))
        .buf.toString('utf8')
        .trim();
      assert.equal(out, 'x [W] y', `${reps} periods (${pad})`);
    }
  }
});
