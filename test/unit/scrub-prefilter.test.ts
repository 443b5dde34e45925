/**
 * The keyword index's filters run in WebAssembly for inputs of at least WASM_MIN bytes
 * (prefilter-wasm.ts). These check that the WebAssembly path reports exactly what the JavaScript
 * loop and a naive search report: every keyword at every position, at the ends of the input and
 * of each segment (SEGMENT positions per call), at every `from`, in any ASCII case, on text and
 * binary bytes; that the memory holds its size across inputs of every length; and that a known
 * secret is redacted at every offset of a scrubbed buffer on this path. The long base64 runs
 * (long-runs-wasm.ts) likewise: the same runs as the JavaScript loop, and the same finds from the
 * matcher on both (the WebAssembly loop's class bits let it skip runs no check can pass).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeywordIndex, WASM_MIN } from '../../src/scrub/keywords.js';
import { SEGMENT } from '../../src/scrub/prefilter-wasm.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { Matcher } from '../../src/scrub/matcher.js';
import { forEachLongRun, MIN_WRAPPED_LINE, setWasmRuns } from '../../src/scrub/decoded.js';
import { MAX_INPUT } from '../../src/scrub/long-runs-wasm.js';

function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

function builtinIndex(extra: string[] = []): { ki: KeywordIndex<string>; kws: string[] } {
  const m = new Map<string, string[]>();
  for (const p of compilePatterns(BUILTIN_PATTERNS)) for (const k of p.keywords ?? []) m.set(k, [...(m.get(k) ?? []), p.id]);
  for (const k of extra) m.set(k, [k]);
  return { ki: new KeywordIndex(m), kws: [...m.keys()] };
}

function hits(ki: KeywordIndex<string>, buf: Buffer, from: number, wasm: boolean): string[] {
  const got: string[] = [];
  ki.useWasm = wasm;
  ki.scan(buf, from, (pos, e) => got.push(`${pos}:${e.bytes.toString('latin1')}`));
  ki.useWasm = true;
  return got;
}

function naive(buf: Buffer, from: number, kws: readonly string[]): string[] {
  const lower = buf.toString('latin1').toLowerCase();
  const want: string[] = [];
  for (let i = from; i < buf.length; i++) for (const k of kws) if (lower.startsWith(k, i)) want.push(`${i}:${k}`);
  return want;
}

/** The naive search over bytes: keywords as KeywordIndex takes them (UTF-8, ASCII case folded). */
function naiveBytes(buf: Buffer, from: number, kws: readonly string[]): string[] {
  const fold = (b: number): number => (b >= 0x41 && b <= 0x5a ? b | 0x20 : b);
  const kb = kws.map((k) => Buffer.from(Buffer.from(k, 'utf8').map(fold)));
  const want: string[] = [];
  for (let i = from; i < buf.length; i++)
    for (const k of kb) if (i + k.length <= buf.length && k.every((b, j) => fold(buf[i + j] ?? 0) === b)) want.push(`${i}:${k.toString('latin1')}`);
  return want;
}

/** Hits at one position may come in any order (one-byte keywords first): compare as sets. */
function sorted(list: string[]): string[] {
  return [...list].sort();
}

test('the WebAssembly filter finds what the JavaScript loop finds: text and binary, random keywords, every from', () => {
  const { ki, kws } = builtinIndex(['x', 'zq']);
  const r = rng(7);
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-|%~"{}\n';
  let total = 0;
  for (let round = 0; round < 120; round++) {
    const n = WASM_MIN + Math.floor(r() * 6000);
    const buf = Buffer.alloc(n);
    for (let i = 0; i < n; i++) buf[i] = round % 3 === 0 ? Math.floor(r() * 256) : alphabet.charCodeAt(Math.floor(r() * alphabet.length));
    for (let j = 0; j < 60; j++) {
      const k = kws[Math.floor(r() * kws.length)] ?? 'x';
      const at = Math.floor(r() * n);
      Buffer.from(r() < 0.5 ? k.toUpperCase() : k, 'latin1').copy(buf, at);
    }
    for (const from of [0, 1, 2, 3, Math.floor(r() * 64)]) {
      if (buf.length - from < WASM_MIN) continue;
      const js = hits(ki, buf, from, false);
      assert.deepEqual(hits(ki, buf, from, true), js, `round ${round} from ${from}`);
      if (round % 10 === 0) assert.deepEqual(sorted(js), sorted(naive(buf, from, kws)), `naive, round ${round} from ${from}`);
      total += js.length;
    }
  }
  assert.ok(total > 10_000, `the inputs hold keywords (${total} hits)`);
});

test('the WebAssembly filter: every keyword at every position near the input ends and the segment seams', () => {
  const kws = ['ghp_', 'sk', 'x', 'akia', 'sk-ant-api03', 'pat', '0|', 'fake_secret_0123456789_abcdefghijklmnopqrstuv'];
  const ki = new KeywordIndex(new Map(kws.map((k) => [k, [k]])));
  for (const len of [WASM_MIN, WASM_MIN + 1, WASM_MIN + 2, WASM_MIN + 3, SEGMENT + 1, SEGMENT + 2, SEGMENT + 5, 2 * SEGMENT + 3]) {
    const spots = new Set<number>();
    for (const edge of [0, len, SEGMENT, 2 * SEGMENT]) for (let d = -13; d <= 13; d++) if (edge + d >= 0 && edge + d < len) spots.add(edge + d);
    for (const k of kws) {
      for (const at of spots) {
        if (at + k.length > len) continue;
        const buf = Buffer.alloc(len, '.');
        buf.write(at % 2 ? k.toUpperCase() : k, at, 'latin1');
        for (const from of [0, 1]) {
          // The naive search on short inputs; on long ones the JavaScript loop (the naive one
          // agrees with it on short inputs here and in scrub-runs.test.ts).
          const want = len < 4096 ? sorted(naive(buf, from, kws)) : sorted(hits(ki, buf, from, false));
          assert.deepEqual(sorted(hits(ki, buf, from, true)), want, `${k} at ${at} in ${len} bytes from ${from}`);
        }
      }
    }
  }
});

test('two-byte keywords at odd starts and trigrams shared by short and long keywords: every filler byte, every alignment, both ends', () => {
  // Two-byte keywords are found at p − 1 through the odd bigram (p − 1, p), not a trigram; the
  // WebAssembly loop keeps apart the trigram kinds (short or long keyword, at p or at p − 1), so
  // these share bigrams and trigrams on purpose: `pat` (at p − 1: `at·`) and `atlassian` (at p:
  // `atl`), `kk` whose first byte is the second of `sk`, `sks` and `sk`, a one-byte `k` at p + 1,
  // a UTF-8 `é` (two bytes ≥ 0x80), a four-byte `atat` (at p − 1 the 4-gram cannot vouch for it).
  const kws = ['sk', 's.', 'q~', '0|', 'kk', 'sks', 'pat', 'atlassian', 'atat', 'k', 'é', 'ka\u00ff'];
  const ki = new KeywordIndex(new Map(kws.map((k) => [k, [k]])));
  const len = WASM_MIN + 40;
  const backing = Buffer.alloc(len + 8);
  let total = 0;
  for (let v = 0; v < 256; v++) {
    for (const k of kws) {
      const kb = Buffer.from(k, 'utf8');
      // Near both ends and in the middle, at both parities, in lower and upper case.
      for (const at of [0, 1, 2, 3, 500, 501, len - kb.length - 1, len - kb.length]) {
        const shift = (v + at) % 4; // the buffer's own offset: the JavaScript loop's aligned and unaligned reads
        const buf = backing.subarray(shift, shift + len);
        buf.fill(v);
        const cased = v % 2 === 0 ? k.toUpperCase() : k;
        buf.write(cased, at, 'utf8');
        for (const from of [0, 1]) {
          const js = hits(ki, buf, from, false);
          assert.deepEqual(hits(ki, buf, from, true), js, `${JSON.stringify(cased)} at ${at} in byte ${v}, from ${from}`);
          if (v % 37 === 0) assert.deepEqual(sorted(js), sorted(naiveBytes(buf, from, kws)), `naive: ${JSON.stringify(cased)} at ${at} in byte ${v}, from ${from}`);
          total += js.length;
        }
      }
    }
  }
  assert.ok(total > 50_000, `the keywords were found (${total})`);
});

test('fuzz: sets of short keywords and long ones sharing their bytes, over haystacks of those bytes, across the segment seams (seeded)', () => {
  const r = rng(21);
  const alphabet = ['a', 't', 's', 'k', '.', '|', '0', 'p', '\xe9', '\xff', '\0'];
  const word = (n: number): string => Array.from({ length: n }, () => alphabet[Math.floor(r() * alphabet.length)]).join('');
  let total = 0;
  for (let round = 0; round < 40; round++) {
    const set = new Set<string>();
    for (let i = 0; i < 3 + Math.floor(r() * 10); i++) set.add(word(1 + Math.floor(r() * (r() < 0.7 ? 3 : 9))));
    const kws = [...set];
    const ki = new KeywordIndex(new Map(kws.map((k) => [k, [k]])));
    const n = round % 4 === 0 ? SEGMENT + 1 + Math.floor(r() * 9) : WASM_MIN + Math.floor(r() * 3000);
    const buf = Buffer.from(Array.from({ length: n }, () => (alphabet[Math.floor(r() * alphabet.length)] ?? 'a').charCodeAt(0)));
    for (let i = 0; i < n; i++) if (r() < 0.3) buf[i] = (buf[i] ?? 0) ^ 0x20; // ASCII case, and bytes near the alphabet's
    for (const from of [0, 1, 2 + Math.floor(r() * 5)]) {
      const js = hits(ki, buf, from, false);
      assert.deepEqual(hits(ki, buf, from, true), js, `round ${round} keywords ${JSON.stringify(kws)} from ${from}`);
      if (n < 4096) assert.deepEqual(sorted(js), sorted(naiveBytes(buf, from, kws)), `naive: round ${round} keywords ${JSON.stringify(kws)} from ${from}`);
      total += js.length;
    }
  }
  assert.ok(total > 20_000, `the haystacks hold keywords (${total})`);
});

test('the WebAssembly filter keeps its memory: a long input, then short ones, then a long one again', () => {
  const { ki, kws } = builtinIndex();
  const r = rng(3);
  const make = (n: number): Buffer => {
    const b = Buffer.alloc(n, ' ');
    for (let j = 0; j < n / 500; j++) b.write(kws[Math.floor(r() * kws.length)] ?? 'x', Math.floor(r() * (n - 40)), 'latin1');
    return b;
  };
  for (const n of [5 * SEGMENT + 17, WASM_MIN, 3000, 7 * SEGMENT, WASM_MIN + 1]) {
    const buf = make(n);
    assert.deepEqual(hits(ki, buf, 0, true), hits(ki, buf, 0, false), `${n} bytes`);
  }
});

test('a known secret is redacted at every offset of a buffer scanned on the WebAssembly path', () => {
  const value = `fake_${'k9Qz'.repeat(6)}`;
  const s = compileScrubber({ secrets: [{ name: 'tok', value, replacement: 'HANDLE' }], patterns: compilePatterns(BUILTIN_PATTERNS) });
  const filler = Buffer.alloc(WASM_MIN + 200, 'a');
  for (let at = 0; at + value.length <= filler.length; at += at < 64 || at > filler.length - 96 ? 1 : 37) {
    const buf = Buffer.from(filler);
    buf.write(value, at, 'latin1');
    const out = s.scrubBuffer(buf).buf.toString('latin1');
    assert.ok(!out.includes(value) && out.includes('HANDLE'), `secret at ${at}`);
  }
});

function runsOf(buf: Buffer, from: number, wasm: boolean): string[] {
  const got: string[] = [];
  setWasmRuns(wasm);
  try {
    forEachLongRun(buf, from, MIN_WRAPPED_LINE, (s, e) => got.push(`${s}-${e}`));
  } finally {
    setWasmRuns(true);
  }
  return got;
}

test('long base64 runs in WebAssembly: what the JavaScript loop finds, at the ends, at every from, up to the size limit', () => {
  const r = rng(5);
  const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-';
  let total = 0;
  for (let round = 0; round < 150; round++) {
    const n = 1024 + Math.floor(r() * 9000);
    const buf = Buffer.alloc(n);
    for (let i = 0; i < n;) {
      // Runs of 30–50 alphabet bytes (around MIN_WRAPPED_LINE) between one or two other bytes.
      const run = 30 + Math.floor(r() * 21);
      for (let k = 0; k < run && i < n; k++) buf[i++] = b64.charCodeAt(Math.floor(r() * b64.length));
      for (let k = Math.floor(r() * 2); k >= 0 && i < n; k--) buf[i++] = round % 2 ? Math.floor(r() * 256) : ' \n".:,'.charCodeAt(Math.floor(r() * 6));
    }
    for (const from of [0, 1, Math.floor(r() * 200), n - 1024]) {
      const js = runsOf(buf, from, false);
      assert.deepEqual(runsOf(buf, from, true), js, `round ${round} from ${from}`);
      total += js.length;
    }
  }
  assert.ok(total > 5_000, `the inputs hold long runs (${total})`);
  // Runs touching both ends, exactly MIN_WRAPPED_LINE and one short of it, and a run that is the whole input.
  for (const n of [1024, 1025, 4096, MAX_INPUT - 1, MAX_INPUT, MAX_INPUT + 1]) {
    const buf = Buffer.alloc(n, ' ');
    buf.fill('A', 0, MIN_WRAPPED_LINE);
    buf.fill('b', 100, 100 + MIN_WRAPPED_LINE - 1);
    buf.fill('/', 200, 200 + MIN_WRAPPED_LINE);
    buf.fill('Z', n - MIN_WRAPPED_LINE);
    for (const from of [0, 1, 10, 150]) {
      const js = runsOf(buf, from, false);
      assert.deepEqual(runsOf(buf, from, true), js, `${n} bytes from ${from}`);
      assert.equal(js.length, from === 0 ? 3 : 2, `${n} bytes from ${from}: ${js.join(' ')}`);
    }
    const whole = Buffer.alloc(n, 'Q');
    assert.deepEqual(runsOf(whole, 0, true), [`0-${n}`]);
  }
});

test('the matcher finds the same on both long-run loops (the WebAssembly one skips runs whose class bits fail a check)', () => {
  const r = rng(9);
  const patterns = compilePatterns(BUILTIN_PATTERNS);
  const hex = '0123456789abcdef';
  const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const pick = (a: string, n: number): string => Array.from({ length: n }, () => a[Math.floor(r() * a.length)]).join('');
  let aws = 0;
  for (const secrets of [[], [{ name: 's', value: `fake-${pick(b64, 24)}`, replacement: 'H' }]]) {
    const m = new Matcher(secrets, patterns, 1024);
    for (let round = 0; round < 60; round++) {
      let s = '';
      while (s.length < 1024 + 3000) {
        const x = r();
        // 40-byte runs: git SHAs (hex, skipped by their bits), mixed alnum (aws-shaped), upper
        // case only, digits and letters without upper case; longer runs and runs with `-`/`_`/`=`.
        if (x < 0.15) s += `"${pick(hex, 40)}"`;
        else if (x < 0.3) s += `"${pick(b64, 40)}"`;
        else if (x < 0.35) s += ` ${pick('ABCDEFGHIJKLMNOPQRSTUVWXYZ', 40)} `;
        else if (x < 0.4) s += ` ${pick('abcdefghijklmnopqrstuvwxyz0123456789', 40)}\n`;
        else if (x < 0.5) s += ` ${pick(b64 + '-_=', 30 + Math.floor(r() * 40))}\n`;
        else s += pick(' ":,{}\n.abc', 1 + Math.floor(r() * 8));
      }
      const buf = Buffer.from(s, 'latin1');
      for (const from of [0, 1, Math.floor(r() * 300)]) {
        setWasmRuns(false);
        const js = m.find(buf, from);
        setWasmRuns(true);
        const wasm = m.find(buf, from);
        assert.deepEqual(wasm, js, `round ${round} from ${from}`);
        aws += js.filter((c) => c.redaction.id === 'aws-secret-access-key').length;
      }
    }
  }
  assert.ok(aws > 100, `aws-shaped runs were found (${aws})`);
});

test('escaped runs: the WebAssembly search for escape starts finds what the indexOf loop finds (dense escapes, binary, secrets escaped)', () => {
  const r = rng(13);
  const value = 'fake/Secret+Value=0123456789';
  const m = new Matcher([{ name: 'tok', value, replacement: 'H' }], compilePatterns(BUILTIN_PATTERNS), 1024);
  const escaped = (v: string): string =>
    [...v]
      .map((ch) => {
        const x = r();
        const code = ch.charCodeAt(0);
        if (x < 0.3) return `%${code.toString(16).padStart(2, '0')}`;
        if (x < 0.45) return `&#${code};`;
        if (x < 0.55) return `&#x${code.toString(16).toUpperCase()}`;
        if (x < 0.65) return `\\u${code.toString(16).padStart(4, '0')}`;
        return ch;
      })
      .join('');
  let secrets = 0;
  for (let round = 0; round < 80; round++) {
    const parts: Buffer[] = [];
    let n = 0;
    while (n < 1024 + 4000) {
      const x = r();
      // Each escape kind alone too: JSON's `\/` only, `\u` only, percent only, references only.
      const only = [value.replace('/', '\\/'), value.replace('S', '\\u0053'), value.replace('/', '%2F'), value.replace('+', '&#43;')];
      const p =
        x < 0.03
          ? Buffer.from(` ${escaped(value)} `, 'latin1')
          : x < 0.06
            ? Buffer.from(` "${only[Math.floor(r() * 4)] ?? value}" `, 'latin1')
            : x < 0.3
              ? Buffer.from(['%4', '%zz', '&amp;', '&#', '&x', '\\u00', '\\/', '%', '&', '\\'][Math.floor(r() * 10)] ?? '%', 'latin1')
              : round % 2 === 0
                ? Buffer.from(Array.from({ length: 1 + Math.floor(r() * 30) }, () => Math.floor(r() * 256)))
                : Buffer.from(' ab"c:d<e,'.slice(0, 1 + Math.floor(r() * 9)), 'latin1');
      parts.push(p);
      n += p.length;
    }
    const buf = Buffer.concat(parts);
    for (const from of [0, 1, Math.floor(r() * 500)]) {
      setWasmRuns(false);
      const js = m.find(buf, from);
      setWasmRuns(true);
      assert.deepEqual(m.find(buf, from), js, `round ${round} from ${from}`);
      secrets += js.filter((c) => c.redaction.kind === 'secret').length;
    }
  }
  assert.ok(secrets > 100, `escaped secrets were found (${secrets})`);
});

test('escaped runs: an escaped secret at every offset of the last 40 bytes, every input length modulo the SIMD step (32 bytes)', () => {
  const value = 'fake/Secret+Value=0123456789';
  const m = new Matcher([{ name: 'tok', value, replacement: 'H' }], compilePatterns(BUILTIN_PATTERNS), 1024);
  const escaped = Buffer.from(value.replace('/', '%2F').replace('S', '\\u0053'), 'latin1');
  // Enough `%`, `&` and `\` up front that the rest of the input goes to the SIMD search.
  const head = Buffer.from('%zz &x \\q '.repeat(8), 'latin1');
  let secrets = 0;
  for (let n = 1100; n < 1100 + 32; n++) {
    for (let at = n - escaped.length - 40; at <= n - escaped.length; at++) {
      const buf = Buffer.alloc(n, 0x2e);
      head.copy(buf, 0);
      escaped.copy(buf, at);
      for (const from of [0, 1]) {
        setWasmRuns(false);
        const js = m.find(buf, from);
        setWasmRuns(true);
        assert.deepEqual(m.find(buf, from), js, `${n} bytes, secret at ${at}, from ${from}`);
        secrets += js.filter((c) => c.redaction.kind === 'secret').length;
      }
    }
  }
  assert.equal(secrets, 32 * 41 * 2, 'the escaped secret was found at every offset');
});

test('a keyword index whose WebAssembly instance cannot be made keeps the JavaScript loop (same hits)', () => {
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: unknown } }).WebAssembly;
  const real = wasm.Memory;
  const { ki: failing, kws } = builtinIndex();
  const { ki: working } = builtinIndex();
  const buf = Buffer.alloc(WASM_MIN + 500, ' ');
  kws.slice(0, 40).forEach((k, i) => buf.write(k, 10 + i * 30, 'latin1'));
  wasm.Memory = function (): never {
    throw new RangeError('WebAssembly.Memory(): could not allocate memory');
  };
  let got: string[];
  try {
    got = hits(failing, buf, 0, true);
  } finally {
    wasm.Memory = real;
  }
  assert.deepEqual(got, hits(working, buf, 0, false));
  assert.ok(got.length >= 40, `the keywords were found (${got.length})`);
  assert.deepEqual(hits(failing, buf, 0, true), got, 'and keeps it afterwards');
});
