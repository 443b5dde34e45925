/**
 * Seeded fuzzer over the spellings docs/scrubbing.md claims beyond the fixed forms: random
 * secrets (punctuation, `%`/`&`/`\\`, non-ASCII, an emoji) as mixed escapes (each character
 * literal or escaped as %XX in either case, &#…; decimal or hex, \\uXXXX or a surrogate pair), as
 * base64 and base64url embedded after and before random bytes, and as base64 wrapped at 40–99
 * columns (LF or CRLF), in short bodies (JavaScript loops) and long ones (WebAssembly), in one
 * call and split at random points. Nothing may survive: for base64, no base64 run of the output
 * decodes (at any offset) to bytes holding the secret. A failure names its seed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';

function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}
const SEEDS = 25;

test('fuzz: mixed escapes, embedded and wrapped base64 of random secrets, one call and streamed (seeded)', () => {
  const chars = [...'abcXYZ019/+=_-.~%&\\:;!é€ü🔑'];
  const patterns = compilePatterns(BUILTIN_PATTERNS);
  const fails: string[] = [];
  let total = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = rng(seed);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)] as T;
    const value = Array.from({ length: 10 + Math.floor(r() * 30) }, () => pick(chars)).join('');
    const s = compileScrubber({ secrets: [{ name: 's', value, replacement: '[S]' }], patterns });
    const vb = Buffer.from(value);
    for (let round = 0; round < 20; round++) {
      const kind = Math.floor(r() * 4);
      let spelled: string;
      if (kind === 0) {
        // mixed escapes
        spelled = [...value]
          .map((ch) => {
            const bytes = [...Buffer.from(ch)];
            const x = r();
            // An encoder escapes its own escape characters (a literal one would be ambiguous).
            const must = ch === '%' || ch === '&' || ch === '\\';
            if (!must && x < 0.5) return ch;
            const cp = ch.codePointAt(0) ?? 0;
            const y = r();
            if (y < 0.3) return bytes.map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
            if (y < 0.5) return `&#${cp};`;
            if (y < 0.7) return `&#x${cp.toString(16)};`;
            // An astral character as its surrogate pair (JSON), others as one \\uXXXX.
            if (y < 0.85) return ch.length === 2 ? `\\u${ch.charCodeAt(0).toString(16)}\\u${ch.charCodeAt(1).toString(16)}` : `\\u${cp.toString(16).padStart(4, '0')}`;
            return bytes.map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
          })
          .join('');
      } else {
        const pre = Buffer.from(Array.from({ length: Math.floor(r() * 6) }, () => Math.floor(r() * 256)));
        const suf = Buffer.from(Array.from({ length: Math.floor(r() * 6) }, () => Math.floor(r() * 256)));
        let b = Buffer.concat([pre, vb, suf]).toString(kind === 3 ? 'base64url' : 'base64');
        if (kind === 2) {
          const w = 40 + Math.floor(r() * 60);
          b = (b.match(new RegExp(`.{1,${w}}`, 'g')) ?? []).join(r() < 0.5 ? '\n' : '\r\n');
        }
        spelled = b;
      }
      total++;
      const pad = r() < 0.5 ? 0 : 1500;
      const body = Buffer.from(`${' '.repeat(pad)}x ${spelled} y\n`, 'utf8');
      const out = s.scrubBuffer(body).buf.toString('utf8');
      let leaked = false;
      const inc = s.createIncremental();
      const cuts = [0, ...Array.from({ length: 3 }, () => Math.floor(r() * body.length))].sort((a, b) => a - b);
      const parts: Buffer[] = [];
      for (let k = 0; k < cuts.length; k++) parts.push(inc.write(body.subarray(cuts[k], cuts[k + 1] ?? body.length)));
      parts.push(inc.end());
      if (Buffer.concat(parts).toString('utf8') !== out) fails.push(`seed ${seed} stream differs cuts ${cuts}`);
      if (kind === 0) leaked = out.includes(spelled) || !out.includes('[S]');
      else {
        const joined = out.replace(/\r?\n/g, '');
        for (const m of joined.matchAll(/[A-Za-z0-9+/_-]{4,}={0,2}/g)) {
          const t = m[0].replace(/-/g, '+').replace(/_/g, '/');
          for (let o = 0; o < 4; o++) if (Buffer.from(t.slice(o), 'base64').includes(vb)) leaked = true;
        }
      }
      if (leaked) fails.push(`seed ${seed} kind ${kind} value ${JSON.stringify(value)} spelled ${JSON.stringify(spelled)} out ${JSON.stringify(out.trim().slice(0, 200))}`);
    }
  }
  assert.deepEqual(fails.slice(0, 8), []);
  assert.ok(total > 400, `spellings tried (${total})`);
});
