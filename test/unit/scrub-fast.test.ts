// The fast paths (keyword index, run scan, windowed patterns) against brute force; the stream's
// idle flush and scan limit; WebSocket frame scrubbing; the `scrub:` rule-file section.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy } from '../../src/config/load.js';
import { KeywordIndex } from '../../src/scrub/keywords.js';
import { BUILTIN_PATTERNS, compilePatterns, newRE2 } from '../../src/scrub/patterns.js';
import { findRuns, runSpecOf } from '../../src/scrub/runs.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { createWsScrubber, encodeFrame, parseFrame } from '../../src/scrub/ws-frames.js';
import { streamThrough } from '../helpers/stream-through.js';

function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

test('keyword index reports exactly the case-insensitive occurrences brute force finds', () => {
  const kws = ['|', 'sk', 's.', 'ghp_', 'sk-ant-api03', 'xoxb', 'AKIA', 'q~', '.ey'];
  const ki = new KeywordIndex(new Map(kws.map((k) => [k.toLowerCase(), [k]])));
  const r = rng(3);
  const alpha = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.|~ \n\u00e9';
  for (let round = 0; round < 300; round++) {
    let s = '';
    for (let i = 0; i < 200; i++) s += r() < 0.05 ? (kws[Math.floor(r() * kws.length)] ?? '') : (alpha[Math.floor(r() * alpha.length)] ?? '');
    const buf = Buffer.from(s, 'latin1');
    const low = s.toLowerCase();
    const from = Math.floor(r() * 10);
    const want = new Set<string>();
    for (const k of kws) for (let i = low.indexOf(k.toLowerCase(), from); i >= 0; i = low.indexOf(k.toLowerCase(), i + 1)) want.add(`${i}:${k.toLowerCase()}`);
    const got = new Set<string>();
    ki.scan(buf, from, (pos, e) => got.add(`${pos}:${e.bytes.toString('latin1')}`));
    assert.deepEqual([...got].sort(), [...want].sort());
  }
});

test('keyword index on short inputs (0-40 bytes, every from, at every byte offset of its buffer): exactly what brute force finds', () => {
  const kws = ['|', 'sk', 's.', 'ghp_', 'xoxb', 'AKIA', 'q~', '.ey', 'sk-ant-api03'];
  const ki = new KeywordIndex(new Map(kws.map((k) => [k.toLowerCase(), [k]])));
  const r = rng(7);
  const alpha = 'skSK.|~qghpxoAKIaey_-0 ';
  const backing = Buffer.alloc(64);
  let compared = 0;
  for (let len = 0; len <= 40; len++) {
    for (let round = 0; round < 12; round++) {
      let s = '';
      while (s.length < len) s += r() < 0.2 ? (kws[Math.floor(r() * kws.length)] ?? '') : (alpha[Math.floor(r() * alpha.length)] ?? '');
      s = s.slice(0, len);
      // The input at every offset of a larger buffer (the loop reads bytes, not aligned words).
      const shift = round % 4;
      const buf = backing.subarray(shift, shift + len);
      buf.write(s, 'latin1');
      const low = s.toLowerCase();
      for (let from = 0; from <= len; from++) {
        const want: string[] = [];
        for (let i = from; i < len; i++) for (const k of kws) if (low.startsWith(k.toLowerCase(), i)) want.push(`${i}:${k.toLowerCase()}`);
        const got: string[] = [];
        ki.scan(buf, from, (pos, e) => got.push(`${pos}:${e.bytes.toString('latin1')}`));
        assert.deepEqual(got.sort(), want.sort(), `${JSON.stringify(s)} from ${from}`);
        compared++;
      }
    }
  }
  assert.equal(compared, 12 * ((41 * 42) / 2)); // every length 0-40, 12 inputs each, every from 0-len
});

test('the run scan finds what the regex shape means, including runs one byte apart', () => {
  const src = '(?:[^A-Za-z0-9+/]|\\A)([A-Za-z0-9+/]{40})(?:[^A-Za-z0-9+/]|\\z)';
  const spec = runSpecOf(src, '');
  assert.ok(spec);
  assert.equal(runSpecOf(src, 'i'), undefined);
  assert.equal(runSpecOf('(?:[^a-z]|\\A)([a-y]{4})(?:[^a-z]|\\z)', ''), undefined, 'classes must agree');
  const re = newRE2(src, 'gd');
  const r = rng(9);
  for (let round = 0; round < 200; round++) {
    let s = '';
    while (s.length < 400) s += r() < 0.3 ? 'A'.repeat(38 + Math.floor(r() * 5)) : r() < 0.5 ? ' ' : 'x';
    const got: string[] = [];
    findRuns(spec, Buffer.from(s), 0, (a, b) => got.push(`${a}-${b}`));
    // Reference: a run of exactly 40 bounded by non-class bytes, at every start.
    const want: string[] = [];
    for (let i = 0; i + 40 <= s.length; i++) {
      const run = /^[A-Za-z0-9+/]{40}/.test(s.slice(i)) && (i === 0 || !/[A-Za-z0-9+/]/.test(s[i - 1] ?? '')) && !/[A-Za-z0-9+/]/.test(s[i + 40] ?? ' ');
      if (run) want.push(`${i}-${i + 40}`);
    }
    assert.deepEqual(got, want);
    re.lastIndex = 0;
    for (let m = re.exec(s); m; m = re.exec(s))
      assert.ok(
        got.some((g) => g.startsWith(`${m?.indices?.[1]?.[0]}-`)),
        'everything the regex finds',
      );
  }
});

test('windowed patterns: a token after a keyword hit far into a buffer is found; tokens in 1 MB of noise', () => {
  const s = compileScrubber({ secrets: [], patterns: compilePatterns(BUILTIN_PATTERNS) });
  const tok = `ghp_${'Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2'.slice(0, 36)}`;
  const r = rng(5);
  let noise = '';
  while (noise.length < 1 << 20) noise += r() < 0.02 ? 'ghp_ sk- xoxb s. .ey ' : String.fromCharCode(32 + Math.floor(r() * 90));
  const text = `${noise.slice(0, 500_000)} ${tok} ${noise.slice(500_000)}`;
  const out = s.scrubString(text).text;
  assert.ok(!out.includes(tok) && out.includes('[REDACTED:github-pat]'));
});

const collect = streamThrough;

test('idle flush: held bytes up to the last line feed go out when the input pauses; a token mid-line stays held', { timeout: 10_000 }, async () => {
  const secret = `fake_${'q'.repeat(10)}z9`;
  const s = compileScrubber({ secrets: [{ name: 'k', value: secret, replacement: 'HANDLE' }], patterns: compilePatterns(BUILTIN_PATTERNS) });
  const st = s.createStream({ idleFlushMs: 20 });
  const got: Buffer[] = [];
  st.on('data', (c: Buffer) => got.push(c));
  // The flush is an event: wait for the output to hold the first event's end, then check all of it.
  const flushed = new Promise<void>((resolve) => {
    const check = (): void => {
      if (Buffer.concat(got).toString().includes('\n\n')) {
        st.off('data', check);
        resolve();
      }
    };
    st.on('data', check);
  });
  st.write(Buffer.from(`data: one ${secret}\n\ndata: two ${secret.slice(0, 8)}`));
  await flushed;
  assert.equal(Buffer.concat(got).toString(), 'data: one HANDLE\n\n', 'the event went out, the half token did not');
  st.end(Buffer.from(`${secret.slice(8)} end\n`));
  await new Promise((r) => st.on('end', r));
  assert.equal(Buffer.concat(got).toString(), 'data: one HANDLE\n\ndata: two HANDLE end\n');
});

test('maxScanBytes: the first N bytes are scanned, the rest passes as is', async () => {
  const secret = 'fake_limit_secret_9z';
  const s = compileScrubber({ secrets: [{ name: 'k', value: secret, replacement: 'H' }], patterns: [] });
  const body = Buffer.from(`${secret} ${'x'.repeat(5000)} ${secret}`);
  const out = await collect(s.createStream({ maxScanBytes: 4096 }), [body.subarray(0, 3000), body.subarray(3000)]);
  assert.equal(out.toString(), `H ${'x'.repeat(5000)} ${secret}`);
});

test('WebSocket: every message and control payload scrubbed across fragments; protocol errors fail closed', async () => {
  const secret = 'fake_ws_secret_abcdef12';
  const s = compileScrubber({ secrets: [{ name: 'k', value: secret, replacement: 'HANDLE' }], patterns: [] });
  const frames = Buffer.concat([
    encodeFrame(0x1, Buffer.from(`a ${secret.slice(0, 9)}`), false),
    encodeFrame(0x9, Buffer.from(`ping ${secret}`)),
    encodeFrame(0x0, Buffer.from(`${secret.slice(9)} b`), true),
    encodeFrame(0x2, Buffer.from(secret.slice(0, 5)), false),
    encodeFrame(0xa, Buffer.from(Buffer.from(secret).toString('base64'))),
    encodeFrame(0x0, Buffer.from(secret.slice(5)), true),
    encodeFrame(0x8, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from(`bye ${secret}`)])),
  ]);
  const parts: Buffer[] = [];
  for (let i = 0; i < frames.length; i += 3) parts.push(frames.subarray(i, i + 3));
  const out = await collect(createWsScrubber(s), parts);
  // The first fragments were too short to release (held by the scrubber's window), so each
  // message leaves as one frame once its FIN arrives; control frames are not held back.
  assert.deepEqual(
    out,
    Buffer.concat([
      encodeFrame(0x9, Buffer.from('ping HANDLE')),
      encodeFrame(0x1, Buffer.from('a HANDLE b')),
      encodeFrame(0xa, Buffer.from('HANDLE')),
      encodeFrame(0x2, Buffer.from('HANDLE')),
      encodeFrame(0x8, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('bye HANDLE')])),
    ]),
  );
  const masked = Buffer.from([0x81, 0x81, 1, 2, 3, 4, 0x41]);
  await assert.rejects(collect(createWsScrubber(s), [masked]), /masked/);
  await assert.rejects(collect(createWsScrubber(s), [Buffer.from([0xc1, 0x00])]), /reserved bits/);
  await assert.rejects(collect(createWsScrubber(s), [encodeFrame(0x0, Buffer.from('x'))]), /continuation without a message/);
  await assert.rejects(collect(createWsScrubber(s), [encodeFrame(0x3, Buffer.from('x'))]), /unknown opcode/);
});

test('WebSocket: a long fragmented message streams (bounded hold), fragments keep the message whole', async () => {
  const secret = 'fake_ws_stream_secret_77';
  const s = compileScrubber({ secrets: [{ name: 'k', value: secret, replacement: 'HANDLE' }], patterns: [] });
  const piece = Buffer.alloc(256 * 1024, 0x61);
  const input = [encodeFrame(0x2, piece, false)];
  for (let i = 0; i < 40; i++) input.push(encodeFrame(0x0, i === 20 ? Buffer.concat([piece, Buffer.from(secret)]) : piece, false));
  input.push(encodeFrame(0x0, Buffer.from('end'), true));
  const t = createWsScrubber(s);
  const frames: Array<{ op: number; fin: boolean; len: number }> = [];
  let pending = Buffer.alloc(0);
  let payload = 0;
  let found = false;
  t.on('data', (c: Buffer) => {
    pending = Buffer.concat([pending, c]);
    for (let p = parseFrame(pending); p; p = parseFrame(pending)) {
      frames.push({ op: p.frame.opcode, fin: p.frame.fin, len: p.frame.payload.length });
      payload += p.frame.payload.length;
      if (p.frame.payload.includes('HANDLE')) found = true;
      assert.ok(!p.frame.payload.includes(secret));
      pending = pending.subarray(p.size);
    }
  });
  for (const f of input) t.write(f);
  t.end();
  await new Promise((r) => t.on('end', r));
  assert.equal(frames[0]?.op, 0x2, 'the first fragment carries the opcode');
  assert.ok(
    frames.slice(1).every((f) => f.op === 0x0),
    'the rest are continuations',
  );
  assert.deepEqual(
    frames.map((f) => f.fin),
    [...frames.slice(1).map(() => false), true],
    'one FIN, at the end',
  );
  assert.ok(frames.length > 30, `released as it streams (${frames.length} frames)`);
  assert.equal(payload, 41 * piece.length + 'HANDLE'.length + 3);
  assert.ok(found);
});

test('scrub: section: defaults, content types, patterns; bad entries are file:line:col problems', () => {
  const base = 'agents:\n  - name: a\nrules:\n  - name: r\n    methods: [read]\n    hosts: [x.test]\n';
  const p = compilePolicy([
    {
      file: 'a.yaml',
      text: `${base}scrub:\n  content_types: [text/*, application/json]\n  max_body_scan: 1048576\n  patterns:\n    - { id: acme, regex: "acme_[a-z]{8}", keywords: [acme_] }\n  oauth_capture:\n    - { name: o, token_url: "https://auth.x.test/token", hosts: [api.x.test] }\n`,
    },
  ]);
  const sc = p.settings.scrub;
  assert.deepEqual(sc?.contentTypes, ['text/*', 'application/json']);
  assert.equal(sc?.maxBodyScan, 1048576);
  assert.equal(sc?.patterns[0]?.id, 'acme');
  assert.equal(sc?.oauthCapture[0]?.host, 'auth.x.test');
  assert.equal(sc?.oauthCapture[0]?.path, '/token');
  const bad = (text: string, re: RegExp): void => {
    assert.throws(
      () => compilePolicy([{ file: 'b.yaml', text: `${base}scrub:\n${text}` }]),
      (e: Error) => re.test(e.message),
      text,
    );
  };
  bad('  patterns:\n    - { id: x1, regex: "(a)\\\\1" }\n', /^b\.yaml:9:\d+: scrub\.patterns\[0\]\.regex: pattern "x1" cannot be used/m);
  bad('  patterns:\n    - { id: x2, regex: "a*" }\n', /b\.yaml:9:\d+: .*matches the empty string/);
  bad('  patterns:\n    - { id: github-pat, regex: "abc" }\n', /built-in pattern id/);
  bad('  content_types: [textplain]\n', /b\.yaml:8:\d+: .*not a media type/);
  bad('  oauth_capture:\n    - { name: o, token_url: "http://auth.x.test/t", hosts: [a.test] }\n', /token_url must be https/);
  bad('  max_body_scan: 10\n', /between 4096/);
  bad('  contents_types: all\n', /did you mean "content_types"/);
});
