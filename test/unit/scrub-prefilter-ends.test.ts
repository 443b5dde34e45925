/**
 * Attack review of the keyword prefilter's WebAssembly loop after it went to four positions per
 * step (prefilter-wasm-code.ts: four, then two, then one position; a KIND byte per bigram, the
 * odd bigram for two-byte keywords, trigram kinds per start). Which of those three stages handles
 * an input's last positions depends on (length − from) modulo 8, and which start (p − 1, p,
 * p + 1) a keyword is found from depends on its length and parity: keywords of 1–5 bytes that
 * nest, overlap or share a trigram with another kind, at every offset of an input's last 40 bytes,
 * for all eight residues, in both cases, must be found as the JavaScript loop and a naive search
 * find them (same starts, same order). Then the whole scrubber, seeded: generated fake secrets that
 * share prefixes, are short, upper case, non-ASCII or hold a line feed, with the token corpus's
 * examples, escaped spellings and base64 runs, in one call and in chunkings: the same bytes and
 * redactions as the JavaScript loops, and no secret survives.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { secretNeedles } from '../../src/scrub/encodings.js';
import { KeywordIndex, WASM_MIN } from '../../src/scrub/keywords.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { SEGMENT } from '../../src/scrub/prefilter-wasm.js';
import { compileScrubber, type Scrubber } from '../../src/scrub/scrubber.js';
import { calls, countWasm, jsOnly, naive, rng, scan } from '../helpers/wasm-mode.js';

countWasm();

const SETS = [
  // nested: each a prefix of the next (1 to 5 bytes)
  ['x', 'ab', 'abc', 'abcd', 'abcde'],
  // overlapping: one keyword's tail is another's head, at both parities
  ['ba', 'ab', 'aba', 'bab', 'abab', 'babab'],
  // one trigram, several kinds: `abc` at p (short) and at p − 1 of `xabcd` (long), `bcd` at p
  ['abc', 'xabcd', 'abcdef', 'zab', 'bcd', 'cdxy'],
  // NUL and DEL, a two-byte keyword's second byte that is also a one-byte keyword
  ['\0', '\0\0', 'a\0b', '\x7f\0', 'k', 'sk', 'kks'],
];

test("the loop's last positions: keywords of 1-5 bytes at every offset of the last 40 bytes, every (length - from) modulo 8, both cases", () => {
  let total = 0;
  for (const kws of SETS) {
    const ki = new KeywordIndex(new Map(kws.map((k) => [k, [k]])));
    const lower = kws.map((k) => Buffer.from(k, 'latin1'));
    for (const k of kws) {
      for (const filler of [0x2e, k.charCodeAt(0)]) {
        for (let len = WASM_MIN + 2; len < WASM_MIN + 10; len++) {
          for (let at = len - k.length - 40; at <= len - k.length; at++) {
            const buf = Buffer.alloc(len, filler);
            buf.write(at % 2 === 0 ? k.toUpperCase() : k, at, 'latin1');
            for (const from of [0, 1]) {
              const where = `${JSON.stringify(k)} at ${at} of ${len} in byte ${filler}, from ${from}`;
              const wasm = scan(ki, buf, from, true);
              assert.deepEqual(wasm, scan(ki, buf, from, false), `WebAssembly vs JavaScript: ${where}`);
              if (at % 3 === 0) assert.deepEqual([...wasm].sort(), naive(buf, from, lower), `naive: ${where}`);
              total += wasm.length;
            }
          }
        }
      }
    }
  }
  assert.equal(calls.prefilter > 0, true, 'the WebAssembly loop ran');
  assert.ok(total > 100_000, `the keywords were found (${total})`);
});

test("the last positions of a segment's tail: keywords at the seam and the input's end, (length - from) modulo 8 past SEGMENT", () => {
  const kws = SETS[2] ?? [];
  const ki = new KeywordIndex(new Map(kws.map((k) => [k, [k]])));
  const lower = kws.map((k) => Buffer.from(k, 'latin1'));
  for (let len = SEGMENT + 4; len < SEGMENT + 12; len++) {
    for (const k of kws) {
      const buf = Buffer.alloc(len, 0x2e);
      // every offset around the seam and at the end, at once: where they overlap, both are found
      for (let at = SEGMENT - 9; at + k.length <= len && at < SEGMENT + 6; at += k.length + 1) buf.write(k, at, 'latin1');
      buf.write(k.toUpperCase(), len - k.length, 'latin1');
      for (const from of [0, 1]) {
        const wasm = scan(ki, buf, from, true);
        assert.deepEqual(wasm, scan(ki, buf, from, false), `${JSON.stringify(k)} in ${len}, from ${from}`);
        const lo = SEGMENT - 16;
        const near = naive(buf.subarray(lo), 0, lower).map((h) => `${Number(h.slice(0, h.indexOf(':'))) + lo}${h.slice(h.indexOf(':'))}`);
        assert.deepEqual([...wasm].sort(), near.sort(), `naive: ${JSON.stringify(k)} in ${len}, from ${from}`);
      }
    }
  }
});

const CORPORA = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/corpora');
const EXAMPLES = (JSON.parse(fs.readFileSync(path.join(CORPORA, 'secret_patterns.json'), 'utf8')) as { rule_id: string; example_raw: string }[])
  .filter((r) => r.rule_id !== 'pkcs12-file')
  .map((r) => r.example_raw);

function chunked(s: Scrubber, buf: Buffer, cuts: readonly number[]): { out: string; redactions: string } {
  const redactions: unknown[] = [];
  const inc = s.createIncremental((r) => redactions.push(r));
  const outs: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    outs.push(inc.write(buf.subarray(prev, c)));
    prev = c;
  }
  outs.push(inc.end(buf.subarray(prev)));
  return { out: Buffer.concat(outs).toString('latin1'), redactions: JSON.stringify(redactions) };
}

test('fuzz: generated secrets (shared prefixes, short, upper case, non-ASCII, line feeds) and token examples, one call and chunked: the JavaScript loops give the same, no secret survives (seeded)', () => {
  const patterns = compilePatterns(BUILTIN_PATTERNS);
  let secretsFound = 0;
  for (const seed of [31, 32, 33]) {
    const r = rng(seed);
    const ri = (n: number): number => Math.floor(r() * n);
    const pick = <T>(a: readonly T[]): T => a[ri(a.length)] as T;
    const hex = (n: number): string => Array.from({ length: n }, () => '0123456789abcdef'[ri(16)]).join('');
    const head = `fake_${hex(16)}`;
    const values = [
      head,
      `${head.slice(0, 10)}${hex(12)}`,
      `fake_${hex(4)}`,
      `FAKE_${hex(8).toUpperCase()}Zq`,
      `fake_é€${hex(6)}`,
      `fake_${hex(6)}\nline_${hex(4)}`,
      `fake/${hex(6)}+${hex(4)}=`,
    ];
    const secrets = values.map((value, k) => ({ name: `s${k}`, value, replacement: `[S${k}]` }));
    const s = compileScrubber({ secrets, patterns });
    for (const n of [WASM_MIN + ri(8), 3000 + ri(3000), SEGMENT - 40 + ri(80)]) {
      const parts: Buffer[] = [];
      let len = 0;
      while (len < n) {
        const x = r();
        let p: Buffer;
        if (x < 0.08) {
          const nd = pick(secretNeedles(pick(values)));
          p = Buffer.from(nd.caseless === true && r() < 0.5 ? nd.bytes.toUpperCase() : nd.bytes, 'latin1');
        } else if (x < 0.12)
          p = Buffer.from(
            pick(values).replace(/[0-9a-f]/g, (c) => (r() < 0.3 ? `%${c.charCodeAt(0).toString(16)}` : r() < 0.2 ? `\\u00${c.charCodeAt(0).toString(16)}` : c)),
            'utf8',
          );
        else if (x < 0.17) p = Buffer.from(pick(EXAMPLES), 'utf8');
        else if (x < 0.2) p = Buffer.from(Buffer.from(pick(values)).toString('base64'), 'latin1');
        else if (x < 0.25) p = Buffer.from(pick(['pat', 'ghp_', 'sk', 's.', 'q~', '0|', 'akia', 'xoxb-', 'AKIA', '%2', '&#', '\\u00', '\\']), 'latin1');
        else if (x < 0.6) p = Buffer.from(Array.from({ length: 1 + ri(40) }, () => ri(256)));
        else p = Buffer.from(pick([' ', '\n', '"x": ', '{"a":"', '", ', '},\n', 'abc de_f']), 'latin1');
        parts.push(p);
        len += p.length;
      }
      const buf = Buffer.concat(parts);
      const where = `seed ${seed}, ${buf.length} bytes`;
      const one = s.scrubBuffer(buf);
      const ref = jsOnly(() => s.scrubBuffer(buf));
      assert.equal(one.buf.toString('latin1'), ref.buf.toString('latin1'), `one call: ${where}`);
      assert.deepEqual(one.redactions, ref.redactions, `one call, redactions: ${where}`);
      // ASCII case only: the raw value is found ignoring ASCII case (bytes ≥ 0x80 stay as they are)
      const ascii = (t: string): string => t.replace(/[A-Z]/g, (c) => c.toLowerCase());
      const out = ascii(one.buf.toString('latin1'));
      for (const v of values) assert.ok(!out.includes(ascii(Buffer.from(v, 'utf8').toString('latin1'))), `${where}: ${JSON.stringify(v)} survived`);
      secretsFound += one.redactions.filter((x) => x.kind === 'secret').length;
      for (const step of [7, 1000, 16384]) {
        const cuts: number[] = [];
        for (let at = step + ri(step); at < buf.length; at += 1 + ri(2 * step)) cuts.push(at);
        const got = chunked(s, buf, cuts);
        assert.deepEqual(
          got,
          jsOnly(() => chunked(s, buf, cuts)),
          `chunks of about ${step}: ${where}`,
        );
      }
    }
  }
  assert.ok(secretsFound > 50, `secrets were found (${secretsFound})`);
});
