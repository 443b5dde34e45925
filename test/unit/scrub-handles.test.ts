/**
 * Token patterns never fire inside a genuine Turret handle (a random 40-character run inside one
 * can look like an AWS secret key, and redacting it would break the agent's credential), but an
 * upstream cannot shield a token by dressing it up as a handle, and known secrets are always found.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';

const patterns = compilePatterns(BUILTIN_PATTERNS);
// 40 mixed-case alphanumerics: the AWS secret-access-key run scan's shape.
const RUN = 'Zq3Xb7Kp2Lm9Nw4Rt6Yv8Ua1Sd5Fg0Hj3Kl7Mn2P';
const HANDLE = `trt_AbC-_${RUN}-xYz_0123456789abcdef`;

function scrub(isHandle: ((t: string) => boolean) | undefined, text: string, secrets: Array<{ name: string; value: string; replacement: string }> = []): string {
  const s = compileScrubber({ secrets, patterns, isHandle });
  const one = s.scrubString(text).text;
  // Streamed one byte at a time must agree.
  const stream = s.createStream();
  const out: Buffer[] = [];
  stream.on('data', (c: Buffer) => out.push(c));
  for (const b of Buffer.from(text)) stream.write(Buffer.from([b]));
  stream.end();
  assert.equal(Buffer.concat(out).toString(), one);
  return one;
}

it('the run is a token by itself (so the tests below can fail)', () => {
  assert.match(scrub(undefined, `key: ${RUN} end`), /\[REDACTED:aws/);
  assert.match(scrub(undefined, `{"access_token":"${HANDLE}"}`), /\[REDACTED:aws/);
});

it('a genuine handle passes whole', () => {
  const text = `{"access_token":"${HANDLE}","n":1}`;
  assert.equal(
    scrub((h) => h === HANDLE, text),
    text,
  );
});

it('a handle-shaped string that does not open as a handle gets no protection', () => {
  assert.match(
    scrub(() => false, `{"x":"${HANDLE}"}`),
    /\[REDACTED:aws/,
  );
});

it('a known secret inside a handle-shaped run is still replaced', () => {
  const value = `fake_value_${RUN.slice(0, 12)}`;
  const text = `trt_${'A'.repeat(20)}${value}${'B'.repeat(20)}`;
  const out = scrub(() => true, text, [{ name: 's', value, replacement: '[S]' }]);
  assert.ok(!out.includes(value));
  assert.ok(out.includes('[S]'));
});
