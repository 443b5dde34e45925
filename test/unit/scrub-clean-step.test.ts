/**
 * The engine's clean step (a scan that finds nothing: no candidate filter, no plan, nothing kept at
 * the end) and the matcher's per-call maps made only on a keyword hit that needs them
 * (docs/benchmarks.md "Hot path", twelfth pass). A clean small body comes back as the very input;
 * a secret or token at offset 0, at the very end, split across two chunks, after clean chunks that
 * took the clean step, and in bodies just below, at and just above the two-window point where a
 * write starts emitting is still redacted, with what each write emits the same as before.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';

const VALUE = `fake_${randomBytes(12).toString('hex')}`;
const s = compileScrubber({ secrets: [{ name: 'k', value: VALUE, replacement: '[K]' }], patterns: compilePatterns(BUILTIN_PATTERNS) });
const alnum = (n: number): string => {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let i = 0; i < n; i++) out += a[randomInt(a.length)];
  return out;
};
const GH = `ghp_${alnum(36)}`;
/** Clean JSON of n bytes (like the peers bench's /small answer), with keyword-ish words that a
 * pattern's keyword scan hits but no pattern matches ("key", "token", "secret", "sk"). */
function cleanJson(n: number): string {
  let s = '{"items":[';
  for (let i = 0; s.length < n; i++) s += `{"id":${i},"key":"value ${i}","token":"none","secret":false,"sk":"x"},`;
  return s.slice(0, n);
}
const SECRETS: Array<[string, string]> = [
  [VALUE, '[K]'],
  [GH, '[REDACTED:github-pat]'],
];

test('a clean small body comes back as the very input buffer, with no redaction (JSON with keyword hits, plain text, binary)', () => {
  for (const body of [Buffer.from(cleanJson(300)), Buffer.from('hello, world\n'), Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80]), Buffer.from(cleanJson(2000))]) {
    const r = s.scrubBuffer(body);
    assert.equal(r.buf, body);
    assert.deepEqual(r.redactions, []);
  }
  const text = cleanJson(500);
  assert.equal(s.scrubString(text).text, text);
});

test('a secret or token at offset 0, at the very end, alone, and twice in a small body is redacted (one shot)', () => {
  for (const [secret, marker] of SECRETS) {
    const mid = cleanJson(200);
    for (const [input, want] of [
      [secret, marker],
      [`${secret} ${mid}`, `${marker} ${mid}`],
      [`${mid} ${secret}`, `${mid} ${marker}`],
      [`${secret}${mid}${secret}`, `${marker}${mid}${marker}`],
    ] as const) {
      const out = s.scrubBuffer(Buffer.from(input)).buf.toString();
      assert.equal(out, want);
      assert.ok(!out.includes(secret));
    }
  }
});

test('a PEM private key at the start and at the end of a small body (the block path) is still dropped whole', () => {
  const pem = `-----BEGIN RSA PRIVATE KEY-----\n${randomBytes(300).toString('base64')}\n-----END RSA PRIVATE KEY-----`;
  for (const [input, want] of [
    [pem, '[REDACTED:private-key]'],
    [`${pem}\nafter`, '[REDACTED:private-key]\nafter'],
    [`before\n${pem}`, 'before\n[REDACTED:private-key]'],
  ] as const) {
    assert.equal(s.scrubBuffer(Buffer.from(input)).buf.toString(), want);
  }
});

/** What each write of an incremental scrub emits, and the end. */
function pieces(chunks: readonly Buffer[]): string[] {
  const inc = s.createIncremental();
  const out = chunks.map((c) => inc.write(c).toString('latin1'));
  out.push(inc.end().toString('latin1'));
  return out;
}

test('clean writes emit everything but the last window, from the two-window point on (just below, at, just above)', () => {
  const w = s.window;
  for (const n of [2 * w - 1, 2 * w, 2 * w + 1, 4 * w + 3]) {
    const body = Buffer.from(cleanJson(n), 'latin1');
    const [first, last] = pieces([body]);
    if (n < 2 * w) assert.equal(first, '', `n ${n}: held until two windows`);
    else assert.equal(first, body.subarray(0, n - w).toString('latin1'), `n ${n}: all but one window`);
    assert.equal((first ?? '') + (last ?? ''), body.toString('latin1'));
  }
});

test('a secret split across two chunks, after clean chunks that took the clean step, around the two-window point: redacted, same as one shot', () => {
  const w = s.window;
  for (const [secret, marker] of SECRETS) {
    for (const pre of [2 * w - 1, 2 * w, 2 * w + 1, 3 * w]) {
      const head = cleanJson(pre);
      const body = Buffer.from(`${head}${secret} tail`, 'latin1');
      const want = `${head}${marker} tail`;
      assert.equal(s.scrubBuffer(body).buf.toString('latin1'), want);
      for (const split of [0, 1, Math.floor(secret.length / 2), secret.length - 1, secret.length]) {
        const at = pre + split;
        // A clean chunk first (it takes the clean step once it holds two windows), then the rest in two.
        const chunks = [body.subarray(0, pre), body.subarray(pre, at), body.subarray(at)];
        const got = pieces(chunks).join('');
        assert.equal(got, want, `pre ${pre}, split ${split}`);
        assert.ok(!got.includes(secret));
      }
    }
  }
});

test('a secret at the very end of a stream, whose last chunk is one byte, after a clean body long enough to emit', () => {
  const w = s.window;
  for (const [secret, marker] of SECRETS) {
    const head = cleanJson(2 * w + 5);
    const body = Buffer.from(head + secret, 'latin1');
    const got = pieces([body.subarray(0, body.length - 1), body.subarray(body.length - 1)]).join('');
    assert.equal(got, head + marker);
  }
});

test('two streams of one scrubber, interleaved write by write (the matcher keeps per-call state on itself between the start and the end of a call): each gets its own redactions', () => {
  const w = s.window;
  const a = Buffer.from(`${cleanJson(2 * w + 3)}${VALUE} a-tail ${GH}`, 'latin1');
  const b = Buffer.from(`${GH} b-head ${cleanJson(3 * w)}${VALUE}`, 'latin1');
  const ia = s.createIncremental();
  const ib = s.createIncremental();
  const outA: string[] = [];
  const outB: string[] = [];
  const step = 97;
  for (let i = 0; i < Math.max(a.length, b.length); i += step) {
    outA.push(ia.write(a.subarray(i, i + step)).toString('latin1'));
    outB.push(ib.write(b.subarray(i, i + step)).toString('latin1'));
  }
  outA.push(ia.end().toString('latin1'));
  outB.push(ib.end().toString('latin1'));
  assert.equal(outA.join(''), s.scrubBuffer(a).buf.toString('latin1'));
  assert.equal(outB.join(''), s.scrubBuffer(b).buf.toString('latin1'));
  for (const out of [outA.join(''), outB.join('')]) assert.ok(!out.includes(VALUE) && !out.includes(GH));
  assert.ok(outA.join('').endsWith('[K] a-tail [REDACTED:github-pat]'));
  assert.ok(outB.join('').startsWith('[REDACTED:github-pat] b-head '));
});
