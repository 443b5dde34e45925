/**
 * The stream's per-turn batching (stream.ts, issue #15): chunks that arrive within one turn of
 * the event loop are scanned together when the turn ends, or at once when BATCH bytes are queued.
 * Hostile cases: a secret split across chunks of one turn, across two turns and exactly at the
 * BATCH boundary; a reader that stops reading (backpressure: memory stays bounded); an end and a
 * destroy in the middle of a turn; the maxScanBytes limit inside a batch; the idle flush with
 * bytes still queued. Streamed output must equal the one-shot result and never hold the secret.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setImmediate as turn } from 'node:timers/promises';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber, type ScrubStream } from '../../src/scrub/scrubber.js';
import { BATCH } from '../../src/scrub/stream.js';

const VALUE = `fake/${randomBytes(6).toString('hex')}+a=b_${randomBytes(4).toString('hex')}`;
const GH = `ghp_${randomBytes(18).toString('hex')}`;
const s = compileScrubber({ secrets: [{ name: 'k', value: VALUE, replacement: '[K]' }], patterns: compilePatterns(BUILTIN_PATTERNS) });
const forms = [VALUE, Buffer.from(VALUE).toString('base64'), encodeURIComponent(VALUE), GH];

function collect(st: ScrubStream): Buffer[] {
  const out: Buffer[] = [];
  st.on('data', (c: Buffer) => out.push(c));
  return out;
}

function check(text: Buffer, got: Buffer[], note: string): void {
  const out = Buffer.concat(got).toString('latin1');
  assert.equal(out, s.scrubBuffer(text).buf.toString('latin1'), `${note}: streamed output differs from the one-shot result`);
  for (const f of forms) assert.ok(!out.includes(f), `${note}: ${f.slice(0, 8)}… survived`);
}

test('chunks of one turn are scanned together when the turn ends; nothing is emitted before', async () => {
  const st = s.createStream();
  const got = collect(st);
  const text = Buffer.from(`${'x'.repeat(5000)} ${VALUE} ${'y'.repeat(5000)}\n`);
  for (let i = 0; i < text.length; i += 1000) st.write(text.subarray(i, i + 1000));
  assert.equal(got.length, 0, 'small chunks wait for the end of the turn');
  assert.equal(st.heldBytes, text.length, 'queued bytes count as held');
  await turn();
  assert.equal(got.length as number, 1, 'one scan, one push for the whole turn');
  st.end();
  await new Promise((r) => st.on('end', r));
  check(text, got, 'one turn');
});

test('within one turn the queue never holds more than one batch: held bytes stay under BATCH + 2·W + 64', async () => {
  const st = s.createStream();
  const got = collect(st);
  const text = Buffer.from(`${'abc def '.repeat(40_000)}${VALUE}\n`);
  let max = 0;
  for (let i = 0; i < text.length; i += 1000) {
    st.write(text.subarray(i, i + 1000)); // all in one turn
    max = Math.max(max, st.heldBytes);
  }
  assert.ok(max <= BATCH + 2 * s.window + 64, `held ${max}`);
  assert.ok(got.length > 0, 'full batches were scanned without waiting for the turn to end');
  st.end();
  await new Promise((r) => st.on('end', r));
  check(text, got, 'many chunks in one turn');
});

test('a secret split at every offset across two chunks of one turn and across two turns', async () => {
  for (const f of forms) {
    const text = Buffer.from(`data: {"v": "${f}"}\n`, 'latin1');
    for (let i = 1; i < text.length; i++) {
      for (const across of [false, true]) {
        const st = s.createStream();
        const got = collect(st);
        st.write(text.subarray(0, i));
        if (across) await turn();
        st.write(text.subarray(i));
        await turn();
        st.end();
        await new Promise((r) => st.on('end', r));
        check(text, got, `${f.slice(0, 8)} split at ${i}${across ? ' across turns' : ''}`);
      }
    }
  }
});

test('a secret straddling the BATCH boundary (scanned at once) at every offset around it', async () => {
  for (const f of forms) {
    for (let d = -f.length - 2; d <= 2; d++) {
      // Chunk 1 ends BATCH + d bytes in; the secret sits across offset BATCH.
      const lead = BATCH - 3;
      const text = Buffer.concat([Buffer.alloc(lead, 0x61), Buffer.from(` ${f} `, 'latin1'), Buffer.alloc(3000, 0x62)]);
      const cut = BATCH + d;
      const st = s.createStream();
      const got = collect(st);
      st.write(text.subarray(0, cut - 4000));
      st.write(text.subarray(cut - 4000, cut)); // reaches BATCH when d ≥ 0: scanned in this call
      if (d >= 0) assert.ok(got.length > 0, 'a full batch is scanned without waiting for the turn');
      st.write(text.subarray(cut));
      st.end();
      await new Promise((r) => st.on('end', r));
      check(text, got, `${f.slice(0, 8)} around BATCH, d ${d}`);
    }
  }
});

test('a reader that stops reading: writes report backpressure and memory stays bounded; resumed, all arrives', async () => {
  const st = s.createStream();
  const parts: Buffer[] = [];
  for (let i = 0; i < 400; i++) parts.push(Buffer.from(`${randomBytes(3000).toString('base64')} ${i % 7 === 0 ? VALUE : 'plain'}\n`));
  const text = Buffer.concat(parts);
  // Nobody reads. One chunk per turn (the case where a turn's batch is small), until the stream
  // says stop; bounded by the number of parts.
  let i = 0;
  for (; i < parts.length; i++) {
    if (!st.write(parts[i])) break;
    await turn();
  }
  await turn();
  const bound = st.readableHighWaterMark + BATCH + st.writableHighWaterMark + 2 * s.window + 64 * 1024;
  assert.ok(i < parts.length, 'backpressure reached the writer');
  assert.ok(st.readableLength + st.writableLength + st.heldBytes <= bound, `buffered ${st.readableLength} + ${st.writableLength} + ${st.heldBytes} > ${bound}`);
  const got = collect(st); // starts reading
  for (i++; i < parts.length; i++) if (!st.write(parts[i])) await new Promise((r) => st.once('drain', r));
  st.end();
  await new Promise((r) => st.on('end', r));
  check(text, got, 'stopped reader, resumed');
});

test('end in the middle of a turn scans what is queued; destroy in the middle of a turn emits nothing more', async () => {
  const text = Buffer.from(`head ${VALUE} tail ${GH.slice(0, 10)}`);
  const st = s.createStream();
  const got = collect(st);
  st.write(text.subarray(0, 9));
  st.write(text.subarray(9, 30));
  st.end(text.subarray(30)); // the body ends mid-token, mid-turn
  await new Promise((r) => st.on('end', r));
  check(text, got, 'end mid-turn');

  const d = s.createStream();
  const dGot = collect(d);
  const errors: Error[] = [];
  d.on('error', (e) => errors.push(e));
  d.write(Buffer.from(`a ${VALUE.slice(0, 8)} ${'x'.repeat(5000)}`));
  d.destroy();
  await once(d, 'close');
  await turn();
  assert.equal(dGot.length, 0, 'nothing is emitted after destroy');
  assert.deepEqual(errors, []);
  assert.equal(d.heldBytes, 0, 'the queue was dropped, never scanned');
});

test('maxScanBytes inside a batch: the first N bytes are scanned, the rest passes as is, in order', async () => {
  const sc = compileScrubber({ secrets: [{ name: 'k', value: VALUE, replacement: 'H' }], patterns: [] });
  const body = Buffer.from(`${VALUE} ${'x'.repeat(5000)} ${VALUE} ${'z'.repeat(100)}`);
  const st = sc.createStream({ maxScanBytes: 4096 });
  const got = collect(st);
  for (let i = 0; i < body.length; i += 700) st.write(body.subarray(i, i + 700));
  await turn();
  st.write(Buffer.from(' after'));
  st.end();
  await new Promise((r) => st.on('end', r));
  assert.equal(Buffer.concat(got).toString(), `H ${'x'.repeat(5000)} ${VALUE} ${'z'.repeat(100)} after`);
});

test('the idle flush scans what is queued first', async () => {
  const st = s.createStream({ idleFlushMs: 5 });
  const got = collect(st);
  st.write(Buffer.from(`data: one ${VALUE}\n\ndata: two ${VALUE.slice(0, 8)}`));
  await once(st, 'data'); // the turn's scan holds all of it (shorter than two windows): the flush emits
  assert.equal(Buffer.concat(got).toString(), 'data: one [K]\n\n', 'the event went out, the half secret did not');
  st.end(Buffer.from(`${VALUE.slice(8)} end\n`));
  await new Promise((r) => st.on('end', r));
  assert.equal(Buffer.concat(got).toString(), 'data: one [K]\n\ndata: two [K] end\n');
});

test('the engine appends into its own buffer: every emitted view stays intact while later chunks arrive', () => {
  // Outputs are kept as the views the engine returned (no copy) and compared only at the end: a
  // later append that wrote over bytes already emitted would show here. Chunk sizes from 1 byte
  // to past the buffer's cap, singly (write) and in lists (writeAll, the stream's batch).
  const parts: Buffer[] = [];
  let size = 0;
  for (let i = 0; size < 2_000_000; i++) {
    // Mostly clean (an output without a redaction is a view, not a copy), a secret now and then.
    const v = i % 150 === 0 ? (forms[(i / 150) % forms.length] ?? '') : 'plain';
    const p = i % 3 === 0 ? randomBytes(900) : Buffer.from(`{"id":${i},"v":"${v}","pad":"${'z'.repeat(i % 97)}"}\n`, 'latin1');
    parts.push(p);
    size += p.length;
  }
  const text = Buffer.concat(parts);
  const want = s.scrubBuffer(text).buf;
  const sizes = [1, 7, 16384, 3, 65536, 300_000, 1000, 16383, 2, 70_000];
  for (const lists of [false, true]) {
    const inc = s.createIncremental();
    const views: Buffer[] = [];
    for (let off = 0, n = 0; off < text.length; n++) {
      const len = sizes[n % sizes.length] ?? 1;
      const c = text.subarray(off, off + len);
      off += c.length;
      if (lists) {
        const cut = Math.floor(c.length / 3);
        views.push(inc.writeAll([c.subarray(0, cut), c.subarray(cut, 2 * cut), c.subarray(2 * cut)]));
      } else views.push(inc.write(c));
    }
    views.push(inc.end());
    assert.ok(Buffer.concat(views).equals(want), `streamed output equals the one-shot result (${lists ? 'writeAll' : 'write'})`);
  }
});
