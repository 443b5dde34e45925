/**
 * Attack review of the WebAssembly keyword loop (prefilter-wasm*.ts): a seeded fuzzer with random
 * keyword sets (prefixes of each other, one-byte keywords, NUL and DEL, UTF-8 bytes, keywords
 * longer than the segment's tail) over random haystacks whose lengths sit at WASM_MIN, the
 * segment seams (SEGMENT) and the WebAssembly page size, compared against the JavaScript loop and
 * a naive search. A failure prints the seed and the round, so it can be replayed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeywordIndex, WASM_MIN } from '../../src/scrub/keywords.js';
import { SEGMENT } from '../../src/scrub/prefilter-wasm.js';
import { secretNeedles } from '../../src/scrub/encodings.js';
import { Matcher } from '../../src/scrub/matcher.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { jsOnly, kwBytes, naive, rng, scan } from '../helpers/wasm-mode.js';

/** Small alphabets so keywords overlap, nest and repeat. */
const KW_CHARS = ['a', 'A', 'b', 'B', 'z', '_', '-', '0', '9', '\0', '\x7f', '%', '\\', '&', 'é', 'É', '€'];

function randomKeywords(r: () => number): string[] {
  const set = new Set<string>();
  const n = 1 + Math.floor(r() * 12);
  const pick = (): string => KW_CHARS[Math.floor(r() * KW_CHARS.length)] ?? 'a';
  while (set.size < n) {
    const x = r();
    const len = x < 0.15 ? 1 : x < 0.3 ? 2 : x < 0.45 ? 3 : x < 0.9 ? 4 + Math.floor(r() * 12) : 40 + Math.floor(r() * 300);
    let k = '';
    for (let i = 0; i < len; i++) k += pick();
    set.add(k);
    // Its prefixes too (keywords that are prefixes of each other).
    if (r() < 0.3) for (let p = 1; p < k.length && set.size < n + 4; p += 1 + Math.floor(r() * 3)) set.add(k.slice(0, p));
  }
  return [...set];
}

function haystack(r: () => number, n: number, kws: readonly string[]): Buffer {
  const buf = Buffer.alloc(n);
  const mode = Math.floor(r() * 3);
  const bytes = Buffer.from(KW_CHARS.join(''), 'utf8');
  for (let i = 0; i < n; i++) buf[i] = mode === 0 ? Math.floor(r() * 256) : mode === 1 ? (bytes[Math.floor(r() * bytes.length)] ?? 0) : r() < 0.5 ? 0x20 : 0x61;
  // Keywords in random ASCII case at random spots, many near the ends and the seams.
  const spots = [0, n, SEGMENT, 2 * SEGMENT, 65536, 131072 - 1];
  for (let j = 0; j < 40; j++) {
    const k = kws[Math.floor(r() * kws.length)] ?? 'a';
    const cased = [...k].map((ch) => (r() < 0.5 ? ch.toUpperCase() : ch)).join('');
    const b = Buffer.from(cased, 'utf8');
    const base = r() < 0.5 ? (spots[Math.floor(r() * spots.length)] ?? 0) + Math.floor(r() * 16) - b.length : Math.floor(r() * n);
    if (base >= 0 && base + b.length <= n) b.copy(buf, base);
  }
  return buf;
}

test('fuzz: random keyword sets over random haystacks, WebAssembly = JavaScript = naive (seeded)', () => {
  const lengths = (r: () => number): number[] => [
    WASM_MIN + Math.floor(r() * 8),
    WASM_MIN + Math.floor(r() * 3000),
    SEGMENT - 8 + Math.floor(r() * 16),
    SEGMENT + 300 + Math.floor(r() * 8),
    2 * SEGMENT + Math.floor(r() * 8) - 4,
  ];
  let total = 0;
  for (const seed of [1, 2, 3]) {
    const r = rng(seed);
    for (let round = 0; round < 5; round++) {
      const kws = randomKeywords(r);
      const ki = new KeywordIndex(new Map(kws.map((k) => [k, [k]])));
      const lower = [...new Set(kws.map((k) => kwBytes(k).toString('latin1')))].map((s) => Buffer.from(s, 'latin1'));
      for (const n of lengths(r)) {
        const buf = haystack(r, n, kws);
        for (const from of [0, 1, Math.floor(r() * 7)]) {
          const wasm = scan(ki, buf, from, true);
          const where = `seed ${seed} round ${round} n ${n} from ${from} keywords ${JSON.stringify(kws)}`;
          assert.deepEqual(wasm, scan(ki, buf, from, false), `WebAssembly vs JavaScript: ${where}`);
          assert.deepEqual([...wasm].sort(), naive(buf, from, lower), `naive: ${where}`);
          total += wasm.length;
        }
      }
    }
  }
  assert.ok(total > 20_000, `the haystacks hold keywords (${total})`);
});

test('every byte value 0..255 around each keyword at the segment seam: WebAssembly = naive', () => {
  // A keyword ending exactly at the seam and starting exactly at it, with every byte value as
  // its neighbour (a neighbour that completes another keyword must be reported too).
  const kws = ['q', 'qz', 'qzq', 'qzqz', 'zqzqz', 'ab\0', '\x7fx', 'é1'];
  const ki = new KeywordIndex(new Map(kws.map((k) => [k, [k]])));
  const lower = kws.map(kwBytes);
  const n = SEGMENT + 64;
  for (const k of lower) {
    for (const at of [SEGMENT - k.length, SEGMENT - 1, SEGMENT]) {
      for (let v = 0; v < 256; v++) {
        const buf = Buffer.alloc(n, 0x2e);
        k.copy(buf, at);
        buf[at - 1] = v;
        buf[at + k.length] = v;
        const got = scan(ki, buf, 0, true);
        // The filler holds no keyword: the naive search around the spot is the whole answer.
        const lo = at - 16;
        const want = naive(buf.subarray(lo, at + k.length + 16), 0, lower).map((h) => `${Number(h.slice(0, h.indexOf(':'))) + lo}${h.slice(h.indexOf(':'))}`);
        assert.deepEqual([...got].sort(), want.sort(), `${k.toString('latin1')} at ${at} next to byte ${v}`);
      }
    }
  }
});

test('fuzz: random secrets (punctuation, non-ASCII) in every claimed spelling, WebAssembly = JavaScript, nothing survives (seeded)', () => {
  const chars = [...'abcXYZ019/+=_-.~%&\\:;!é€ü🔑'];
  const patterns = compilePatterns(BUILTIN_PATTERNS);
  let found = 0;
  for (const seed of [11, 12, 13, 14, 15, 16]) {
    const r = rng(seed);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)] as T;
    const values = Array.from({ length: 1 + Math.floor(r() * 3) }, (_, k) => `k${k}${Array.from({ length: 6 + Math.floor(r() * 30) }, () => pick(chars)).join('')}`);
    const m = new Matcher(
      values.map((value, k) => ({ name: `s${k}`, value, replacement: `[S${k}]` })),
      patterns,
      1024,
    );
    const s = compileScrubber({ secrets: values.map((value, k) => ({ name: `s${k}`, value, replacement: `[S${k}]` })), patterns });
    for (let round = 0; round < 4; round++) {
      const inserted: Array<[string, boolean]> = [];
      const parts: string[] = [];
      let n = 0;
      while (n < WASM_MIN + 1 + Math.floor(r() * 9000)) {
        const x = r();
        let p: string;
        if (x < 0.25) {
          const needles = secretNeedles(pick(values));
          const nd = pick(needles);
          const up = nd.caseless === true && r() < 0.5;
          p = up ? nd.bytes.replace(/[a-z]+/g, (w) => w.toUpperCase()) : nd.bytes;
          inserted.push([nd.bytes, nd.caseless === true]);
        } else if (x < 0.6) p = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 40) }, () => Math.floor(r() * 256))).toString('latin1');
        else p = pick([' ', '\n', '"x": ', '%', '&#', '\\u00', 'pat ', 'ghp_', '==', ':']);
        parts.push(p);
        n += p.length;
      }
      const buf = Buffer.from(parts.join(''), 'latin1');
      const where = `seed ${seed} round ${round} secrets ${JSON.stringify(values)}`;
      for (const from of [0, 1 + Math.floor(r() * 100)])
        assert.deepEqual(
          m.find(buf, from),
          jsOnly(() => m.find(buf, from)),
          `${where} from ${from}`,
        );
      const out = s.scrubBuffer(buf).buf.toString('latin1');
      const low = out.replace(/[A-Z]+/g, (w) => w.toLowerCase());
      for (const [form, caseless] of inserted)
        assert.ok(caseless ? !low.includes(form.replace(/[A-Z]+/g, (w) => w.toLowerCase())) : !out.includes(form), `${where}: ${JSON.stringify(form)} survived`);
      found += inserted.length;
    }
  }
  assert.ok(found > 100, `spellings were inserted (${found})`);
});
