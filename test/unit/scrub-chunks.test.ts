/**
 * Chunk boundaries against the throughput changes (issue #15): the two-bytes-at-a-time keyword
 * scan, the stream's `_writev` coalescing, the base64-run skip loop of the wrapped-base64 finder,
 * the escape pre-check and the facebook keywords. Every spelling the scrubber recognises (each
 * `secretNeedles` form, upper-cased where the form is caseless, mixed escapes, wrapped base64,
 * a Basic credential, token patterns) is split at every offset across two chunks and three
 * chunks, across a coalescing boundary, at the very end of the stream and in one-byte chunks; the
 * output must equal the one-shot result and hold neither the spelling nor the secret.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { secretNeedles } from '../../src/scrub/encodings.js';
import { KeywordIndex } from '../../src/scrub/keywords.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber, type ScrubStream } from '../../src/scrub/scrubber.js';

// `/`, `+`, `=` and `_` are the characters encoders disagree about (no whitespace: an escaped
// run ends there, see decoded.ts).
const VALUE = `fake/${randomBytes(6).toString('hex')}+a=b_${randomBytes(4).toString('hex')}`;
const PATTERNS = compilePatterns(BUILTIN_PATTERNS);
const s = compileScrubber({ secrets: [{ name: 'k', value: VALUE, replacement: '[K]' }], patterns: PATTERNS });

const alnum = (n: number): string => {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let i = 0; i < n; i++) out += a[randomInt(a.length)];
  return out;
};
const digits = (n: number): string => Array.from({ length: n }, () => String(randomInt(10))).join('');
const wrap = (t: string, cols: number, eol: string): string => (t.match(new RegExp(`.{1,${cols}}`, 'g')) ?? []).join(eol);
const b64 = (v: string): string => Buffer.from(v).toString('base64');

const GH = `ghp_${alnum(36)}`;
const FB1 = `${digits(15)}|${alnum(30)}`;
const FB2 = `9${digits(15)}%${alnum(27)}`;
const AWS = `Q${alnum(37)}k7`; // upper, lower, a digit, a non-hex letter: the key's check

/** name → [bytes as latin1 text, what must not survive]. */
const spellings: Record<string, [string, string]> = {};
for (const n of secretNeedles(VALUE)) {
  spellings[`${n.form} ${JSON.stringify(n.bytes.slice(0, 12))}`] = [n.bytes, n.bytes];
  if (n.caseless) spellings[`${n.form} upper-cased`] = [n.bytes.toUpperCase(), n.bytes.toUpperCase()];
}
Object.assign(spellings, {
  'mixed: only / percent-escaped': [VALUE.replace('/', '%2F'), VALUE.slice(5)],
  'mixed: &#x2b; and &#61 (no semicolon)': [VALUE.replace('+', '&#x2b;').replace('=', '&#61'), VALUE.slice(5, 15)],
  'mixed: named references': [VALUE.replace('/', '&sol;').replace('+', '&plus;'), VALUE.slice(5, 15)],
  'mixed: JSON \\u002f': [VALUE.replace('/', '\\u002f'), VALUE.slice(5)],
  'base64 wrapped at 76 columns, CRLF': [wrap(b64(`attachment:${VALUE}:end`), 76, '\r\n'), b64(`attachment:${VALUE}:end`).slice(20, 50)],
  'base64 wrapped at 40 columns, LF': [wrap(b64(`${'x'.repeat(42)}${VALUE}`), 40, '\n'), b64(VALUE).slice(0, 12)],
  'Basic credential (embedded base64)': [b64(`user:${VALUE}`), b64(`user:${VALUE}`).slice(8, 30)],
  'github-pat token': [GH, GH],
  'facebook token, | separator': [FB1, FB1],
  'facebook token, % separator, leading 9': [FB2, FB2],
  'aws secret access key (run scan)': [AWS, AWS],
});

const PRE = 'data: {"v": "';
const POST = '"}\n';

function runStream(chunks: readonly Buffer[], batches?: readonly (readonly Buffer[])[]): { out: string; maxBatch: number } {
  const st: ScrubStream = s.createStream();
  const out: Buffer[] = [];
  st.on('data', (c: Buffer) => out.push(c));
  let maxBatch = 1;
  const orig = st._writev.bind(st);
  st._writev = (cs, cb) => {
    maxBatch = Math.max(maxBatch, cs.length);
    orig(cs, cb);
  };
  if (batches) {
    for (const b of batches) {
      // Queued while corked: uncork hands them to _writev together (what backpressure does).
      st.cork();
      for (const c of b) st.write(c);
      st.uncork();
    }
  } else for (const c of chunks) st.write(c);
  st.end();
  return { out: Buffer.concat(out).toString('latin1'), maxBatch };
}

function check(name: string, text: Buffer, got: string, bad: string, note: string): void {
  const want = s.scrubBuffer(text).buf.toString('latin1');
  assert.equal(got, want, `${name} (${note}): streamed output differs from the one-shot result`);
  if (bad.length > 0) assert.ok(!got.includes(bad), `${name} (${note}): the spelling survived`);
  assert.ok(!got.includes(VALUE), `${name} (${note}): the secret survived`);
}

test('every spelling is found whole and redacted in one call', () => {
  for (const [name, [form, bad]] of Object.entries(spellings)) {
    for (const text of [Buffer.from(`${PRE}${form}${POST}`, 'latin1'), Buffer.from(form, 'latin1')]) {
      const r = s.scrubBuffer(text);
      assert.ok(r.redactions.length > 0, `${name}: nothing redacted`);
      const out = r.buf.toString('latin1');
      if (bad.length > 0) assert.ok(!out.includes(bad), `${name}: the spelling survived`);
      assert.ok(!out.includes(VALUE), `${name}: the secret survived`);
    }
  }
});

test('split at every offset across two chunks and across three chunks', () => {
  for (const [name, [form, bad]] of Object.entries(spellings)) {
    const text = Buffer.from(`${PRE}${form}${POST}`, 'latin1');
    const a = PRE.length;
    const b = a + form.length;
    for (let i = a; i <= b; i++) {
      check(name, text, runStream([text.subarray(0, i), text.subarray(i)]).out, bad, `2 chunks at ${i}`);
      for (const j of new Set([i + 1, i + 2, i + Math.ceil(form.length / 2), b])) {
        if (j <= i || j > text.length) continue;
        check(name, text, runStream([text.subarray(0, i), text.subarray(i, j), text.subarray(j)]).out, bad, `3 chunks at ${i}, ${j}`);
      }
    }
  }
});

test('split across a coalescing boundary: inside one _writev batch and between two', () => {
  for (const [name, [form, bad]] of Object.entries(spellings)) {
    const text = Buffer.from(`${PRE}${form}${POST}`, 'latin1');
    const a = PRE.length;
    const b = a + form.length;
    let seen = 0;
    for (let i = a; i <= b; i++) {
      const j = Math.min(text.length, i + 1 + (i % 5));
      const k = Math.min(text.length, j + 3);
      // Batch 1: [0, i) and [i, j) coalesced; batch 2: [j, k) and the rest.
      const r = runStream(
        [],
        [
          [text.subarray(0, i), text.subarray(i, j)],
          [text.subarray(j, k), text.subarray(k)],
        ],
      );
      seen = Math.max(seen, r.maxBatch);
      check(name, text, r.out, bad, `batches split at ${i} | ${j} | ${k}`);
    }
    assert.ok(seen > 1, `${name}: _writev never saw more than one chunk`);
  }
});

test('at the very end of the stream, and in one-byte chunks', () => {
  for (const [name, [form, bad]] of Object.entries(spellings)) {
    const tail = Buffer.from(`${PRE}${form}`, 'latin1'); // the spelling is the stream's last byte
    for (let i = PRE.length; i <= tail.length; i++) check(name, tail, runStream([tail.subarray(0, i), tail.subarray(i)]).out, bad, `ends the stream, split at ${i}`);
    const text = Buffer.from(`${PRE}${form}${POST}`, 'latin1');
    for (const t of [text, tail]) {
      const ones = Array.from({ length: t.length }, (_, i) => t.subarray(i, i + 1));
      check(name, t, runStream(ones).out, bad, '1-byte chunks');
    }
  }
});

test('a large body in 16 KiB chunks with secrets at chunk edges, coalesced and not', () => {
  const forms = Object.values(spellings);
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < 300_000; i++) {
    const filler = i % 2 === 0 ? JSON.stringify({ id: i, body: 'Token refresh failed; see the docs.' }) : randomBytes(200).toString('latin1');
    const [form] = forms[i % forms.length] ?? ['', ''];
    parts.push(filler, form);
    size += filler.length + form.length;
  }
  const text = Buffer.from(parts.join(''), 'latin1');
  const want = s.scrubBuffer(text).buf.toString('latin1');
  const chunks: Buffer[] = [];
  for (let i = 0; i < text.length; i += 16384) chunks.push(text.subarray(i, i + 16384));
  assert.equal(runStream(chunks).out, want, '16 KiB chunks');
  const batches: Buffer[][] = [];
  for (let i = 0; i < chunks.length; i += 5) batches.push(chunks.slice(i, i + 5));
  assert.equal(runStream([], batches).out, want, '16 KiB chunks, coalesced five at a time');
  assert.ok(!want.includes(VALUE));
});

test('keyword scan: every keyword of the built-in set and the secret forms, any case, at every alignment and at both ends', () => {
  const kws = new Map<string, string[]>();
  for (const p of PATTERNS) for (const k of p.keywords ?? []) kws.set(k.toLowerCase(), [k]);
  for (const n of secretNeedles(VALUE)) if (/^[\x00-\x7f]*$/.test(n.bytes)) kws.set(n.bytes.toLowerCase(), [n.bytes]);
  for (const k of ['|', '%', 'x']) kws.set(k, [k]); // one-byte keywords take their own path
  const ki = new KeywordIndex(kws);
  const list = [...kws.keys()];
  const brute = (buf: Buffer, from: number): string[] => {
    const low = buf.toString('latin1').toLowerCase();
    const want: string[] = [];
    for (let i = from; i < low.length; i++) for (const k of list) if (low.startsWith(k, i)) want.push(`${i}:${k}`);
    return want.sort();
  };
  const alpha = 'abcdefghijklmnopqrstuvwxyz.~_-|%0123456789 \n\x00';
  for (let round = 0; round < 3000; round++) {
    let t = '';
    for (let i = randomInt(4); i > 0; i--) t += alpha[randomInt(alpha.length)];
    const k = list[randomInt(list.length)] ?? '';
    t += [...k].map((c) => (randomInt(2) === 0 ? c.toUpperCase() : c)).join('');
    for (let i = randomInt(4); i > 0; i--) t += alpha[randomInt(alpha.length)];
    if (randomInt(3) === 0) t += list[randomInt(list.length)] ?? '';
    const buf = Buffer.from(t, 'latin1');
    for (let from = 0; from <= Math.min(3, buf.length); from++) {
      const got: string[] = [];
      let prev = -1;
      ki.scan(buf, from, (pos, e) => {
        assert.ok(pos >= prev, 'hits arrive in position order');
        prev = pos;
        got.push(`${pos}:${e.bytes.toString('latin1')}`);
      });
      assert.deepEqual(got.sort(), brute(buf, from), `${JSON.stringify(t)} from ${from}`);
    }
  }
});
