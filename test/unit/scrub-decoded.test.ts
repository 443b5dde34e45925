/**
 * Spellings that mix escaped and literal characters, and wrapped base64 (scrub/decoded.ts): each
 * is replaced whole, in one call, streamed one byte at a time, and in random chunks; text with
 * escapes but no secret is left byte-identical; the negatives corpus is unchanged with a secret
 * configured (over-redaction measured).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';

// `/`, `+`, `=` and `_` are the characters encoders disagree about.
const VALUE = `fake/${randomBytes(9).toString('hex')}+a=b_${randomBytes(6).toString('base64url').replace(/[-_]/g, 'x')}`;
const s = compileScrubber({ secrets: [{ name: 'k', value: VALUE, replacement: '[K]' }], patterns: [] });

function streamed(text: string, sizes: () => number): string {
  const st = s.createStream();
  const out: Buffer[] = [];
  st.on('data', (c: Buffer) => out.push(c));
  const buf = Buffer.from(text);
  for (let i = 0; i < buf.length;) {
    const n = sizes();
    st.write(buf.subarray(i, i + n));
    i += n;
  }
  st.end();
  return Buffer.concat(out).toString();
}

/** Python's urllib.parse.quote(): safe='/', so `/` stays and `+`, `=` are escaped. */
const pyQuote = (v: string): string => v.replace(/[^A-Za-z0-9_.~/-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
const b64 = (v: string): string => Buffer.from(v).toString('base64');
const wrap = (t: string, cols: number, eol: string): string => (t.match(new RegExp(`.{1,${cols}}`, 'g')) ?? []).join(eol);

const forms: Record<string, string> = {
  'Python quote() (keeps /, escapes + and =)': pyQuote(VALUE),
  'only / escaped': VALUE.replace('/', '%2F'),
  'only / escaped, lower-case hex': VALUE.replace('/', '%2f'),
  'only + escaped, value upper-cased': VALUE.toUpperCase().replace('+', '%2B'),
  'one decimal reference (&#47;)': VALUE.replace('/', '&#47;'),
  'zero-padded decimal reference (&#0047;)': VALUE.replace('/', '&#0047;'),
  'hex reference, upper case, zero-padded (&#X002F;)': VALUE.replace('/', '&#X002F;'),
  // Without `;` a reference ends at the first non-digit, as in HTML (`=b` stays two characters).
  'decimal reference without semicolon next to a literal': VALUE.replace('+', '&#x2b;').replace('=', '&#61'),
  'named references (&sol; &plus; &equals;)': VALUE.replace('/', '&sol;').replace('+', '&plus;').replace('=', '&equals;'),
  'JSON \\u002f and \\/ mixed': VALUE.replace('/', '\\u002f').replace('+', '\\u002B'),
  'base64 wrapped at 76 columns (MIME, CRLF)': wrap(b64(`attachment:${VALUE}:end`), 76, '\r\n'),
  'base64 wrapped at 64 columns (PEM, LF)': wrap(b64(`${'x'.repeat(70)}${VALUE}`), 64, '\n'),
  'base64 of the value, percent-escaped (a Basic credential in a URL)': encodeURIComponent(b64(`user:${VALUE}`)),
};

let seed = 7;
const rnd = (): number => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return 1 + (seed % 37);
};

for (const [name, form] of Object.entries(forms)) {
  it(`finds the ${name} form, whole and streamed`, () => {
    const text = `<p>token: ${form}\nthen more text</p>`;
    const once = s.scrubString(text);
    assert.ok(once.redactions.length > 0, `${name}: ${form}`);
    assert.ok(once.text.includes('[K]') && once.text.endsWith('then more text</p>'), once.text);
    assert.equal(
      streamed(text, () => 1),
      once.text,
      'one byte at a time',
    );
    assert.equal(streamed(text, rnd), once.text, 'random chunks');
    // Nothing decodable back to the value is left.
    const out = once.text;
    assert.ok(!decodeURIComponent(out.replace(/%(?![0-9a-f]{2})/gi, '%25')).includes(VALUE), `${name}: percent-decoded`);
    const joined = out.replace(/\r?\n/g, '');
    for (const m of joined.matchAll(/[A-Za-z0-9+/=]{16,}/g)) {
      for (const k of [0, 1, 2, 3]) assert.ok(!Buffer.from(m[0].slice(k), 'base64').toString('latin1').includes(VALUE), `${name}: base64-decoded`);
    }
  });
}

it('text with escapes and wrapped base64 but no secret passes byte-identical', () => {
  const text = [
    'GET /search?q=a%2Fb%20c&x=%3D&lang=en',
    '<a href="/x?a=1&amp;b=2">&lt;tag&gt; &#47; &#x2F; &sol; &copy;</a>',
    '{"path":"a\\/b","u":"\\u00e9"}',
    wrap(randomBytes(300).toString('base64'), 76, '\r\n'),
    '100% sure & 50%off \\ backslash',
  ].join('\n');
  assert.equal(s.scrubString(text).text, text);
});

it('the negatives corpus is unchanged by a configured secret: over-redaction measured', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const file = path.join(root, 'test/fixtures/corpora/secret_negatives.tsv');
  const negatives = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0 && !l.startsWith('#'))
    .map((l) => (l.split('\t')[1] ?? '').replace(/\\([\\nrt])/g, (_m, c: string) => ({ n: '\n', r: '\r', t: '\t', '\\': '\\' })[c] ?? c));
  const patterns = compilePatterns(BUILTIN_PATTERNS);
  const plain = compileScrubber({ secrets: [], patterns });
  const withSecret = compileScrubber({ secrets: [{ name: 'k', value: VALUE, replacement: '[K]' }], patterns });
  const changed = (sc: typeof plain): number => negatives.filter((n) => sc.scrubString(n).text !== n).length;
  const a = changed(plain);
  const b = changed(withSecret);
  console.log(`# over-redaction, default patterns: ${a}/${negatives.length}; with a secret and the decoded finder: ${b}/${negatives.length}`);
  assert.equal(b, a, 'the decoded finder adds no over-redaction');
});
