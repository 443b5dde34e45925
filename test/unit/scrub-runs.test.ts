/**
 * The run-scan patterns (the aws-secret-access-key shape) are scanned only inside the long
 * base64 runs the wrapped-base64 finder enumerates, in the same pass (matcher.ts, sharesRunPass).
 * These check that this finds exactly what a whole-buffer run scan finds, at every `from`, with
 * and without known secrets (the wrapped finder is active only with them), including runs next to
 * `_`/`-` (base64url bytes outside the run's class) and runs that reach back past `from`; the
 * keyword scan's unrolled loop at every buffer length, position and `from`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Matcher, type KnownSecret } from '../../src/scrub/matcher.js';
import { compilePatterns, passesCheck } from '../../src/scrub/patterns.js';
import { findRuns } from '../../src/scrub/runs.js';
import { KeywordIndex } from '../../src/scrub/keywords.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';

function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

const RUN = { id: 'run40', regex: '(?:[^A-Za-z0-9+/]|\\A)([A-Za-z0-9+/]{40})(?:[^A-Za-z0-9+/]|\\z)' };

test('run patterns scanned inside long base64 runs find what a whole-buffer scan finds', () => {
  const [p] = compilePatterns([RUN]);
  const spec = p?.run;
  assert.ok(p && spec, 'the pattern compiles to a run scan');
  const secret: KnownSecret[] = [{ name: 's', value: 'fake-secret-value-0123456789', replacement: 'H' }];
  const r = rng(11);
  const pieces = ['A', 'b', '7', '+', '/', '=', '_', '-', ' ', '\n', '"', '.'];
  let runs = 0;
  for (const secrets of [[], secret]) {
    const m: Matcher = new Matcher(secrets, [p], 1024);
    for (let round = 0; round < 400; round++) {
      let s = '';
      while (s.length < 300) {
        const x = r();
        if (x < 0.35) s += 'Ab0+/'.repeat(8).slice(0, 38 + Math.floor(r() * 5));
        else if (x < 0.45) s += 'Q'.repeat(30 + Math.floor(r() * 20)) + (r() < 0.5 ? '\n' : '');
        else s += pieces[Math.floor(r() * pieces.length)] ?? ' ';
      }
      const buf = Buffer.from(s, 'latin1');
      for (const from of [0, 1, Math.floor(r() * buf.length), buf.length - 41]) {
        if (from < 0) continue;
        const want: string[] = [];
        findRuns(spec, buf, from, (a, b) => want.push(`${a}-${b}`));
        const got = m
          .find(buf, from)
          .filter((c) => c.redaction.id === 'run40')
          .map((c) => `${c.start}-${c.end}`)
          .sort((a, b) => Number(a.split('-')[0]) - Number(b.split('-')[0]));
        assert.deepEqual(got, want, `from ${from} in ${JSON.stringify(s)}`);
        runs += want.length;
      }
    }
  }
  assert.ok(runs > 100, 'the inputs held runs');
});

test('an AWS-shaped key split across chunks at every offset is redacted (shared run pass)', () => {
  const [p] = compilePatterns([RUN]);
  assert.ok(p);
  const key = 'Zx9/Qw8+Er7Ty6Ui5Op4As3Df2Gh1Jk0Lz9Xc8Vb';
  const text = `${'x_'.repeat(30)} ${key}\n${'Q'.repeat(45)}\n`;
  const s = compileScrubber({ secrets: [{ name: 's', value: 'fake-secret-value-0123456789', replacement: 'H' }], patterns: [p] });
  const whole = s.scrubString(text).text;
  assert.ok(!whole.includes(key));
  for (let cut = 0; cut <= text.length; cut++) {
    const inc = s.createIncremental();
    const out = Buffer.concat([inc.write(Buffer.from(text.slice(0, cut))), inc.write(Buffer.from(text.slice(cut))), inc.end()]).toString();
    assert.equal(out, whole, `cut at ${cut}`);
  }
});

test('passesCheck (a table of class bits) agrees with the per-byte definition', () => {
  const r = rng(17);
  const alpha = 'abcdefABCDEFgzGZ0189+/=_- \u00ff';
  for (let round = 0; round < 3000; round++) {
    let s = '';
    const len = 1 + Math.floor(r() * 45);
    const sub = alpha.slice(0, 1 + Math.floor(r() * alpha.length));
    for (let i = 0; i < len; i++) s += sub[Math.floor(r() * sub.length)] ?? 'a';
    const buf = Buffer.from(`##${s}##`, 'latin1');
    const t = [...s];
    const upper = t.some((c) => c >= 'A' && c <= 'Z');
    const lower = t.some((c) => c >= 'a' && c <= 'z');
    const digit = t.some((c) => c >= '0' && c <= '9');
    const nonHex = t.some((c) => (c >= 'G' && c <= 'Z') || (c >= 'g' && c <= 'z'));
    assert.equal(passesCheck('mixed-alnum-not-hex', buf, 2, 2 + len), upper && lower && digit && nonHex, s);
    assert.equal(passesCheck('has-digit', buf, 2, 2 + len), digit, s);
    assert.equal(passesCheck(undefined, buf, 2, 2 + len), true);
  }
});

test('keyword scan (unrolled by two): every keyword at every position, every buffer length and from', () => {
  const kws = ['ghp_', 'sk', 'x', 'akia', 'sk-ant-api03', 'pat'];
  const ki = new KeywordIndex(new Map(kws.map((k) => [k, [k]])));
  for (const k of kws) {
    for (let len = k.length; len <= 24; len++) {
      for (let at = 0; at + k.length <= len; at++) {
        const buf = Buffer.from('.'.repeat(at) + (at % 2 ? k.toUpperCase() : k) + '.'.repeat(len - at - k.length), 'latin1');
        for (let from = 0; from <= len; from++) {
          const got: string[] = [];
          ki.scan(buf, from, (pos, e) => got.push(`${pos}:${e.bytes.toString('latin1')}`));
          const want: string[] = [];
          for (let i = from; i < len; i++)
            for (const w of kws)
              if (
                buf
                  .subarray(i, i + w.length)
                  .toString('latin1')
                  .toLowerCase() === w
              )
                want.push(`${i}:${w}`);
          assert.deepEqual(got, want, `${k} at ${at} in ${len} bytes from ${from}`);
        }
      }
    }
  }
});
