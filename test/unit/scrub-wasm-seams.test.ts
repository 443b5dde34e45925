/**
 * Attack review of the scrubber's WebAssembly paths (keyword loop, long base64 runs, escape
 * starts) through the whole scrubber: every spelling of a known secret docs/scrubbing.md claims,
 * and token patterns, placed at the thresholds where the path changes (WASM_MIN = 1 KiB, the
 * 128 KiB segment seam, the 64 KiB WebAssembly page, the 512 KiB long-run limit), in one call and
 * streamed in chunks of 1, 2, 7, 4095, 4096, 65535, 65536 bytes, streams interleaved on one
 * scrubber, and one huge chunk. Each output must equal what the JavaScript reference loops give
 * and hold no spelling of the secret. Counters show the WebAssembly loops really ran.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import { secretNeedles } from '../../src/scrub/encodings.js';
import { WASM_MIN } from '../../src/scrub/keywords.js';
import { MAX_INPUT } from '../../src/scrub/long-runs-wasm.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { SEGMENT } from '../../src/scrub/prefilter-wasm.js';
import { compileScrubber, type Scrubber } from '../../src/scrub/scrubber.js';
import { calls, countWasm, jsOnly } from '../helpers/wasm-mode.js';

countWasm();

// `/`, `+`, `=`, `_` are where encoders disagree; the second secret has non-ASCII characters
// (its UTF-8 forms take the indexOf path, its \u and &# forms the keyword index).
const VALUE = `fake/${randomBytes(6).toString('hex')}+a=b_${randomBytes(4).toString('hex')}`;
const WIDE = `fakeé€${randomBytes(5).toString('hex')}`;
const PATTERNS = compilePatterns(BUILTIN_PATTERNS);
const s = compileScrubber({
  secrets: [
    { name: 'k', value: VALUE, replacement: '[K]' },
    { name: 'w', value: WIDE, replacement: '[W]' },
  ],
  patterns: PATTERNS,
});
const alnum = (n: number): string => {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let i = 0; i < n; i++) out += a[randomInt(a.length)];
  return out;
};
/** ASCII case only: the scrubber folds ASCII letters (docs/scrubbing.md), never other bytes. */
const upper = (t: string): string => t.replace(/[a-z]+/g, (m) => m.toUpperCase());
const lower = (t: string): string => t.replace(/[A-Z]+/g, (m) => m.toLowerCase());
const b64 = (v: string): string => Buffer.from(v).toString('base64');
const wrap = (t: string, cols: number, eol: string): string => (t.match(new RegExp(`.{1,${cols}}`, 'g')) ?? []).join(eol);
const GH = `ghp_${alnum(36)}`;
const AWS = `Q${alnum(37)}k7`;

/** name → [bytes (latin1), what must not survive (compared ignoring ASCII case when caseless)]. */
const spellings: Array<[string, string, string, boolean]> = [];
for (const v of [VALUE, WIDE]) {
  for (const n of secretNeedles(v)) {
    spellings.push([`${n.form} ${JSON.stringify(n.bytes.slice(0, 10))}`, n.bytes, n.bytes, n.caseless === true]);
    if (n.caseless) spellings.push([`${n.form} upper-cased`, upper(n.bytes), n.bytes, true]);
  }
}
spellings.push(
  ['mixed: / percent-escaped', VALUE.replace('/', '%2F'), VALUE.slice(5), false],
  ['mixed: &#x2b; and &#61', VALUE.replace('+', '&#x2b;').replace('=', '&#61'), VALUE.slice(5, 15), false],
  ['mixed: JSON \\u002f', VALUE.replace('/', '\\u002f'), VALUE.slice(5), false],
  ['base64 wrapped at 76 columns, CRLF', wrap(b64(`attachment:${VALUE}:end`), 76, '\r\n'), b64(`attachment:${VALUE}:end`).slice(20, 50), false],
  ['Basic credential', b64(`user:${VALUE}`), b64(`user:${VALUE}`).slice(8, 30), false],
  ['github-pat token', ` ${GH} `, GH, false],
  ['aws secret access key (run scan)', ` ${AWS} `, AWS, false],
);

/** JSON-ish filler with keyword-rich text (so the filters pass often) and no secret. */
function filler(n: number): Buffer {
  const unit = '{"id": 12, "path": "/api/token?scope=repo", "note": "pat sk- akia x"},\n';
  return Buffer.from(unit.repeat(Math.ceil(n / unit.length)).slice(0, n), 'latin1');
}

function survived(out: string, bad: string, caseless: boolean): boolean {
  return caseless ? lower(out).includes(lower(bad)) : out.includes(bad);
}

function assertClean(out: string, what: string): void {
  for (const v of [VALUE, WIDE]) assert.ok(!lower(out).includes(lower(Buffer.from(v).toString('latin1'))), `${what}: the secret survived`);
  assert.ok(!out.includes(GH) && !out.includes(AWS), `${what}: a token survived`);
}

const oneShot = (sc: Scrubber, b: Buffer): string => sc.scrubBuffer(b).buf.toString('latin1');

test('every spelling at the 1 KiB threshold, the 64 KiB page and the segment seam: the same as the JavaScript loops, nothing survives', () => {
  const before = calls.prefilter;
  for (const [name, form, bad, caseless] of spellings) {
    const f = Buffer.from(form, 'latin1');
    const cases: Array<[number, number]> = [];
    for (const len of [WASM_MIN - 1, WASM_MIN, WASM_MIN + 1]) for (const at of [0, 1, len - f.length - 1, len - f.length]) cases.push([len, at]);
    for (const edge of [65536, SEGMENT]) for (const d of [f.length, (f.length >> 1) + 1, 1]) cases.push([edge + 300, edge - d]);
    for (const [len, at] of cases) {
      if (at < 0 || at + f.length > len) continue;
      const buf = filler(len);
      f.copy(buf, at);
      const out = oneShot(s, buf);
      const what = `${name} at ${at} of ${len}`;
      assert.equal(
        out,
        jsOnly(() => oneShot(s, buf)),
        `${what}: WebAssembly and JavaScript differ`,
      );
      assert.ok(!survived(out, bad, caseless), `${what}: the spelling survived`);
      assertClean(out, what);
    }
  }
  assert.ok(calls.prefilter - before > 500, `the WebAssembly keyword loop ran (${calls.prefilter - before})`);
});

test('streamed: every spelling split at every offset across two and three chunks of a body scanned on the WebAssembly path', () => {
  const before = calls.prefilter;
  for (const [name, form, bad, caseless] of spellings) {
    const head = filler(2500 + randomInt(64));
    const text = Buffer.concat([head, Buffer.from(form, 'latin1'), filler(1800)]);
    const want = jsOnly(() => oneShot(s, text));
    const a = head.length;
    const b = a + form.length;
    // Every split point of short spellings; long ones (\\u, &#x… forms) at a stride.
    const step = Math.max(1, Math.floor(form.length / 20));
    for (let i = a; i <= b; i += i < a + 8 || i > b - 8 ? 1 : step) {
      for (const j of [i, i + 7, b]) {
        if (j < i || j > text.length) continue;
        const inc = s.createIncremental();
        const out = Buffer.concat([inc.write(text.subarray(0, i)), inc.write(text.subarray(i, j)), inc.write(text.subarray(j)), inc.end()]).toString('latin1');
        const what = `${name} split at ${i}, ${j}`;
        assert.equal(out, want, `${what}: differs from the JavaScript one-shot result`);
        assert.ok(!survived(out, bad, caseless), `${what}: the spelling survived`);
      }
    }
  }
  assert.ok(calls.prefilter - before > 500, `the WebAssembly keyword loop ran (${calls.prefilter - before})`);
});

/** A ~300 KiB body with every spelling around 1 KiB, 4 KiB, 64 KiB and segment multiples. */
function bigBody(): Buffer {
  const parts: Buffer[] = [];
  let n = 0;
  const marks = [1024, 4096, 65536, SEGMENT, 2 * SEGMENT, 3 * 65536 + 7];
  let k = 0;
  for (const m of marks) {
    for (let r = 0; r < 6; r++) {
      const [, form] = spellings[k++ % spellings.length] ?? ['', ''];
      const f = Buffer.from(form, 'latin1');
      const at = m - (r * f.length) / 5;
      if (at > n) {
        parts.push(filler(Math.floor(at - n)));
        n = Math.floor(at);
      }
      parts.push(f, Buffer.from(' ', 'latin1'));
      n += f.length + 1;
    }
  }
  for (; k < spellings.length * 2; k++) {
    const [, form] = spellings[k % spellings.length] ?? ['', ''];
    parts.push(filler(97), Buffer.from(form, 'latin1'));
  }
  parts.push(filler(300_000 - Buffer.concat(parts).length));
  return Buffer.concat(parts);
}

test('streamed in chunks of 1, 2, 7, 4095, 4096, 65535, 65536, 70000 bytes and one: what the JavaScript loops give', () => {
  const body = bigBody();
  const want = jsOnly(() => oneShot(s, body));
  assertClean(want, 'JavaScript one-shot');
  assert.equal(oneShot(s, body), want, 'WebAssembly one-shot');
  for (const size of [1, 2, 7, 4095, 4096, 65535, 65536, 70000, body.length]) {
    const inc = s.createIncremental();
    const out: Buffer[] = [];
    for (let i = 0; i < body.length; i += size) out.push(inc.write(body.subarray(i, i + size)));
    out.push(inc.end());
    assert.equal(Buffer.concat(out).toString('latin1'), want, `chunks of ${size}`);
  }
});

test('the stream Transform with odd chunk sizes, corked batches included', async () => {
  const body = bigBody();
  const want = jsOnly(() => oneShot(s, body));
  for (const size of [4095, 65535, 65537]) {
    for (const corked of [false, true]) {
      const st = s.createStream();
      const out: Buffer[] = [];
      st.on('data', (c: Buffer) => out.push(c));
      if (corked) st.cork();
      for (let i = 0; i < body.length; i += size) st.write(body.subarray(i, i + size));
      if (corked) st.uncork();
      st.end();
      await once(st, 'end');
      assert.equal(Buffer.concat(out).toString('latin1'), want, `chunks of ${size}${corked ? ', corked' : ''}`);
    }
  }
});

test('streams interleaved chunk by chunk on one scrubber (and a second scrubber in between) keep their own state', () => {
  const other = compileScrubber({ secrets: [{ name: 'o', value: `other_${alnum(20)}`, replacement: '[O]' }], patterns: PATTERNS });
  const bodies = [bigBody(), Buffer.concat([filler(5000), bigBody().subarray(3)]), bigBody().subarray(0, 200_000)];
  const wants = bodies.map((b) => jsOnly(() => oneShot(s, b)));
  const otherBody = Buffer.concat([filler(70_000), bodies[0] ?? Buffer.alloc(0)]);
  const otherWant = jsOnly(() => oneShot(other, otherBody));
  const incs = bodies.map(() => s.createIncremental());
  const oInc = other.createIncremental();
  const outs: Buffer[][] = bodies.map(() => []);
  const oOut: Buffer[] = [];
  const sizes = [4095, 7, 65536];
  const pos = bodies.map(() => 0);
  let oPos = 0;
  for (let turn = 0; pos.some((p, i) => p < (bodies[i]?.length ?? 0)) || oPos < otherBody.length; turn++) {
    bodies.forEach((b, i) => {
      const size = (sizes[(turn + i) % sizes.length] ?? 1) * (1 + (turn % 3));
      const p = pos[i] ?? 0;
      if (p < b.length) outs[i]?.push(incs[i]?.write(b.subarray(p, p + size)) ?? Buffer.alloc(0));
      pos[i] = p + size;
      // A one-shot call on the same scrubber between two writes of a stream.
      if (turn % 5 === i)
        assert.equal(
          oneShot(s, b.subarray(0, 3000)),
          jsOnly(() => oneShot(s, b.subarray(0, 3000))),
        );
    });
    if (oPos < otherBody.length) oOut.push(oInc.write(otherBody.subarray(oPos, oPos + 30_000)));
    oPos += 30_000;
  }
  incs.forEach((inc, i) => {
    outs[i]?.push(inc.end());
    assert.equal(Buffer.concat(outs[i] ?? []).toString('latin1'), wants[i], `stream ${i}`);
  });
  oOut.push(oInc.end());
  assert.equal(Buffer.concat(oOut).toString('latin1'), otherWant, 'the other scrubber');
});

test('the 512 KiB long-run limit: wrapped base64, escaped spellings and an aws key at the ends of inputs of 512 KiB - 1, 512 KiB, 512 KiB + 1', () => {
  const before = { runs: calls.runs, escapes: calls.escapes };
  const b64Core = b64(`attachment:${VALUE}:end`).slice(20, 50);
  for (const n of [MAX_INPUT - 1, MAX_INPUT, MAX_INPUT + 1]) {
    // Wrapped base64 (MIME, 76 columns) filling the whole input, the secret's lines at the start
    // and at the very end; random bytes with dense escapes, an escaped spelling at the end.
    const secretLines = wrap(b64(`attachment:${VALUE}:end`), 76, '\r\n');
    const mime = wrap(randomBytes(Math.ceil(n * 0.75)).toString('base64'), 76, '\r\n');
    const wrapped = Buffer.from(`${secretLines}\r\n${mime}`.slice(0, n - secretLines.length - 2) + `\r\n${secretLines}`, 'latin1');
    const dense = randomBytes(n);
    for (let i = 0; i < n; i += 40) dense[i] = [0x25, 0x26, 0x5c][i % 3] ?? 0x25;
    const esc = Buffer.from(` ${VALUE.replace('/', '%2F').replace('+', '&#43;')} ${AWS}`, 'latin1');
    esc.copy(dense, n - esc.length);
    for (const [what, buf] of [
      ['wrapped base64', wrapped],
      ['dense escapes', dense],
    ] as const) {
      assert.equal(buf.length, n);
      const want = jsOnly(() => oneShot(s, buf));
      const got = oneShot(s, buf);
      assert.equal(got, want, `${what}, ${n} bytes: WebAssembly and JavaScript differ`);
      assert.ok(!got.replace(/\r\n/g, '').includes(b64Core), `${what}, ${n} bytes: the wrapped base64 survived`);
      assertClean(got, `${what}, ${n} bytes`);
      for (const from of [1, 5]) {
        const inc = s.createIncremental();
        const streamed = Buffer.concat([inc.write(buf.subarray(0, from)), inc.write(buf.subarray(from)), inc.end()]).toString('latin1');
        assert.equal(streamed, want, `${what}, ${n} bytes, split at ${from}`);
      }
    }
  }
  assert.ok(calls.runs > before.runs && calls.escapes > before.escapes, 'the WebAssembly run and escape loops ran');
});

test('one huge chunk (12 MiB) with spellings every ~1 MiB and at the segment seams: redacted, as the JavaScript loops do', () => {
  const n = 12 * 1024 * 1024;
  const buf = Buffer.alloc(n);
  const unit = filler(65536);
  for (let i = 0; i < n; i += unit.length) unit.copy(buf, i);
  let k = 0;
  for (let at = 1000; at < n - 2000; at += at % SEGMENT < 1000 ? SEGMENT - 40 - (k % 7) : 1_000_003) {
    const [, form] = spellings[k++ % spellings.length] ?? ['', ''];
    buf.write(form, at, 'latin1');
  }
  const inc = s.createIncremental();
  const got = Buffer.concat([inc.write(buf), inc.end()]).toString('latin1');
  assertClean(got, '12 MiB chunk');
  assert.equal(
    got,
    jsOnly(() => oneShot(s, buf)),
  );
});
