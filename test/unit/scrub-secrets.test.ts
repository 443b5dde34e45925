// Known secret values in every encoding, byte-exact passthrough, bounded memory, PEM blocks and
// the hold-limit fallback, scrubJson. Every secret here is fake and made at run time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import type { Redaction, Scrubber } from '../../src/scrub/scrubber.js';
import { scrubJson } from '../../src/scrub/json.js';
import { streamThrough } from '../helpers/stream-through.js';

const PATTERNS = compilePatterns(BUILTIN_PATTERNS);
// Hostile characters on purpose: quote, backslash, slash, plus, space, colon, percent, non-ASCII.
const VALUE = `fake-${crypto.randomBytes(9).toString('base64url')}"\\/+ :%ü€`;
const HANDLE = 'tur_h_FAKEHANDLE0001';
const s = compileScrubber({ secrets: [{ name: 'github', value: VALUE, replacement: HANDLE }], patterns: PATTERNS });

async function stream(sc: Scrubber, parts: Buffer[], opts: { maxHoldBytes?: number } = {}): Promise<{ out: Buffer; peak: number; reds: Redaction[] }> {
  const reds: Redaction[] = [];
  const t = sc.createStream({ ...opts, onRedaction: (r) => reds.push(r) });
  return { out: await streamThrough(t, parts), peak: t.peakHeldBytes, reds };
}
const chunks = (b: Buffer, n: number): Buffer[] => {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += n) out.push(b.subarray(i, i + n));
  return out;
};
/** Decode every base64/base64url run in text; the secret must not hide in any of them. */
function decodedRuns(text: string): string {
  return (text.match(/[A-Za-z0-9+/_-]{8,}={0,2}/g) ?? []).map((r) => Buffer.from(r, r.includes('-') || r.includes('_') ? 'base64url' : 'base64').toString('latin1')).join('\n');
}

const forms: [string, string][] = [
  ['raw', VALUE],
  ['base64', Buffer.from(VALUE).toString('base64')],
  ['base64 unpadded', Buffer.from(VALUE).toString('base64').replace(/=+$/, '')],
  ['base64url', Buffer.from(VALUE).toString('base64url')],
  ['percent (encodeURIComponent)', encodeURIComponent(VALUE)],
  ['percent lower-case', encodeURIComponent(VALUE).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())],
  ['form-urlencoded', new URLSearchParams({ t: VALUE }).toString().slice(2)],
  ['JSON-escaped', JSON.stringify(VALUE).slice(1, -1)],
  [
    'JSON-escaped ASCII',
    JSON.stringify(VALUE)
      .slice(1, -1)
      .replace(/[\u0080-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')),
  ],
  ['JSON with \\/', JSON.stringify(VALUE).slice(1, -1).replace(/\//g, '\\/')],
];

test('a known secret is replaced by its handle in every encoding (one-shot and 1-byte stream)', async () => {
  for (const [name, form] of forms) {
    const body = `{"echo":"${form}","n":1}`;
    const { text, redactions } = s.scrubString(body);
    assert.ok(!text.includes(form), `${name}: form survived`);
    assert.equal(text, `{"echo":"${HANDLE}","n":1}`, name);
    assert.deepEqual(redactions, [{ kind: 'secret', id: 'github' }], name);
    const { out, reds } = await stream(s, chunks(Buffer.from(body), 1));
    assert.equal(out.toString('utf8'), text, `${name}: stream`);
    assert.ok(!JSON.stringify(reds).includes(VALUE), 'reports carry the name only');
  }
});

test('base64 of a secret embedded in a longer base64 string is cut at all three alignments', () => {
  for (const pre of ['', 'u', 'us', 'user:', 'ab:cd', 'x:y']) {
    for (const post of ['', ':', ':z', '\n1']) {
      const enc = Buffer.from(pre + VALUE + post).toString('base64');
      const { text, redactions } = s.scrubString(`Authorization: Basic ${enc}`);
      // The handle replaces the core, unless a token pattern (a 40-char run looks like an AWS
      // secret key) overlapped it: then the union is one marker. Either way nothing decodes back.
      assert.ok(
        redactions.some((r) => r.kind === 'secret' && r.id === 'github'),
        `${pre}|${post}: found`,
      );
      assert.ok(!decodedRuns(text).includes(VALUE.slice(0, 12)), `${pre}|${post}: decodes back`);
      const url = Buffer.from(pre + VALUE + post).toString('base64url');
      assert.ok(!decodedRuns(s.scrubString(`x=${url}`).text).includes(VALUE.slice(0, 12)), `${pre}|${post}: base64url`);
    }
  }
});

test('a secret split across chunks is found for every split point and chunk size', async () => {
  const body = Buffer.from(`prefix ${'.'.repeat(1500)} ${VALUE} and ${Buffer.from(VALUE).toString('base64')} suffix`);
  for (const n of [1, 2, 3, 7, 64, 1000]) {
    const { out } = await stream(s, chunks(body, n));
    assert.equal(out.toString('utf8'), s.scrubString(body.toString('utf8')).text, `chunk ${n}`);
    assert.ok(!out.includes(Buffer.from(VALUE)), `chunk ${n}`);
  }
});

test('one secret that is also a known token format: the handle wins over the marker', () => {
  const gh = `ghp_${crypto.randomBytes(27).toString('base64').replace(/[+/]/g, 'x').slice(0, 36)}`;
  const sc = compileScrubber({ secrets: [{ name: 'gh', value: gh, replacement: 'HANDLE-GH' }], patterns: PATTERNS });
  assert.equal(sc.scrubString(`token ${gh}.`).text, 'token HANDLE-GH.');
  assert.equal(sc.empty, false);
  assert.equal(compileScrubber({ secrets: [{ name: 'e', value: '', replacement: 'X' }], patterns: [] }).empty, true);
  assert.equal(compileScrubber({ secrets: [], patterns: [] }).scrubString('abc').text, 'abc');
});

test('non-UTF-8 bytes pass through byte-exact, around a secret too', async () => {
  const bin = crypto.randomBytes(512 * 1024);
  for (const n of [1, 7, 4096, bin.length]) {
    const { out } = await stream(s, chunks(bin, n === 1 ? 997 : n)); // 1-byte over 512 KiB is slow; 997 is prime
    assert.ok(out.equals(bin), `random bytes, chunk ${n}`);
  }
  const mixed = Buffer.concat([Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(VALUE), Buffer.from([0x80, 0xc3, 0x28, 0x00])]);
  const want = Buffer.concat([Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(HANDLE), Buffer.from([0x80, 0xc3, 0x28, 0x00])]);
  assert.ok((await stream(s, chunks(mixed, 1))).out.equals(want));
  assert.ok(s.scrubBuffer(mixed).buf.equals(want));
});

test('a 10 MB stream holds a bounded window, whatever the chunk size', async () => {
  const line = Buffer.from(`{"k":"v","sha":"${'0a'.repeat(20)}","tok":"xoxb-1234567890-1234567890abcdefABCDEF"}\n`);
  const body = Buffer.alloc(10 * 1024 * 1024);
  const plain = Buffer.from(`{"k":"v","sha":"${'0a'.repeat(20)}","n":"${'-'.repeat(42)}"}\n`);
  for (let i = 0, j = 0; i < body.length; i += line.length, j++) (j % 50 === 0 ? line : plain).copy(body, i);
  const bound = 2 * s.window + 64;
  for (const n of [65536, 1 << 20, body.length]) {
    const t = s.createStream();
    let out = 0;
    let maxHeld = 0;
    t.on('data', (c: Buffer) => (out += c.length));
    for (const c of chunks(body, n)) {
      t.write(c);
      maxHeld = Math.max(maxHeld, t.heldBytes);
    }
    t.end();
    await new Promise((r) => t.on('end', r));
    assert.ok(maxHeld <= bound && t.peakHeldBytes <= bound, `chunk ${n}: held ${maxHeld}/${t.peakHeldBytes} > ${bound}`);
    assert.ok(out > 0 && t.heldBytes === 0);
  }
  assert.ok(s.window <= 4096, `window ${s.window}`);
});

test('a token longer than the hold limit is cut and its tail swallowed (fail closed)', async () => {
  const sc = compileScrubber({ secrets: [], patterns: compilePatterns([{ id: 'long-tok', regex: 'tok_[a-z0-9]+' }]) });
  const tok = 'tok_' + crypto.randomBytes(60_000).toString('hex');
  const body = Buffer.from(`before ${tok} after`);
  const { out, peak } = await stream(sc, chunks(body, 4096), { maxHoldBytes: 1024 });
  const text = out.toString();
  assert.ok(peak <= 1024 + 4096, `peak ${peak}`);
  assert.ok(text.startsWith('before [REDACTED:long-tok]'), text.slice(0, 60));
  assert.ok(text.endsWith(' after'));
  assert.ok(!/[0-9a-f]{16}/.test(text), 'no fragment of the token');
});

test('PEM private keys: redacted whole when split anywhere; placeholders and public blocks pass', async () => {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const body = Buffer.from(`config:\n${pem}after the key\n`);
  const bodyLine = pem.split('\n')[5] ?? '';
  for (const n of [1, 7, 100, body.length]) {
    const { out } = await stream(s, chunks(body, n));
    assert.equal(out.toString(), 'config:\n[REDACTED:private-key]\nafter the key\n', `chunk ${n}`);
    assert.ok(!out.toString().includes(bodyLine));
  }
  for (const ok of [
    '-----BEGIN PRIVATE KEY-----\nanything\n-----END PRIVATE KEY-----',
    '-----BEGIN OPENSSH PRIVATE KEY----------END OPENSSH PRIVATE KEY-----',
    '-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----',
  ]) {
    assert.equal(s.scrubString(ok).text, ok);
  }
});

test('a PEM block without an end is dropped up to the 64 KiB cap, then scanning resumes', async () => {
  const junk = crypto.randomBytes(150_000).toString('base64');
  const body = Buffer.from(`-----BEGIN RSA PRIVATE KEY-----\n${junk}`);
  const { out, peak } = await stream(s, chunks(body, 8192));
  const text = out.toString();
  assert.ok(text.startsWith('[REDACTED:private-key]'));
  assert.ok(!text.includes(junk.slice(0, 64 * 1024)), 'the first 64 KiB of the block is gone');
  assert.ok(text.length < junk.length - 64 * 1024 + 100);
  assert.ok(peak <= 2 * s.window + 64 + 8192);
});

test('scrubJson deep-scrubs keys and values, bounded depth, cycles marked', () => {
  let deep: unknown = VALUE;
  for (let i = 0; i < 200; i++) deep = { d: deep };
  const cyc: Record<string, unknown> = { a: VALUE };
  cyc['self'] = cyc;
  const shared = { v: VALUE };
  const rec = {
    msg: `echo ${VALUE}`,
    [VALUE]: 1,
    list: [VALUE, 2, null, true, { x: Buffer.from(VALUE).toString('base64') }],
    err: new Error(`bad ${VALUE}`),
    deep,
    cyc,
    s1: shared,
    s2: shared,
  };
  const out = scrubJson(rec, s);
  const json = JSON.stringify(out);
  assert.ok(!json.includes(JSON.stringify(VALUE).slice(1, -1)) && !json.includes('fake-'));
  assert.ok(json.includes('[TRUNCATED:depth]') && json.includes('[CIRCULAR]'));
  assert.deepEqual((out as { s2: unknown }).s2, { v: HANDLE }); // a shared object is not a cycle
  assert.equal((out as { msg: string }).msg, `echo ${HANDLE}`);
});
