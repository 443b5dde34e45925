/**
 * Large bodies scanned on the scan worker (src/scrub/offload.ts): the off-thread stream must
 * give byte for byte what the in-thread stream gives (secrets split across every batch boundary,
 * odd write sizes, many streams at once), with the redaction callbacks in order; the handle
 * replacement of an injected secret, and a handle-shaped token that does not open with the key
 * is still redacted; the idle flush of a paused stream; the scan limit; held bytes bounded; a
 * worker that dies fails its streams closed (no unscanned byte) and the next stream works.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber, type Redaction, type Scrubber, type ScrubStream } from '../../src/scrub/scrubber.js';
import { OffloadTransform, closeScanWorker, killScanWorkerForTest } from '../../src/scrub/offload.js';
import { ScrubTransform } from '../../src/scrub/stream.js';
import { handleCheck, issueHandle } from '../../src/secrets/handles.js';
import { keyRingFrom } from '../../src/secrets/keys.js';
import { TurretError } from '../../src/core/errors.js';
import { ScrubEngine } from '../../src/scrub/engine.js';
import { Scanner } from '../../src/scrub/offload-scan.js';
import type { FromWorker } from '../../src/scrub/offload-protocol.js';

const SECRET = `fake_${randomBytes(20).toString('hex')}`;
const INJECTED = `fake_${randomBytes(16).toString('hex')}`;
const GH = `ghp_${randomBytes(18).toString('hex')}`;
const ring = keyRingFrom(randomBytes(32));
const patterns = compilePatterns(BUILTIN_PATTERNS);
const { handle } = issueHandle(ring, { agent: 'a', secret: 'injected', ttlSeconds: 3600 });
// Handle-shaped, holding an AWS-secret-shaped run (40 mixed-case alphanumerics), not sealed with the key.
const RUN = `Zq3Xb7Kp2Lm9Nw4Rt6Yv8Ua1${randomBytes(8).toString('hex').toUpperCase()}`;
const forged = `trt_AbC-_${RUN}-xYz_0123456789abcdef`;
const scrubber = compileScrubber({
  secrets: [
    { name: 'k', value: SECRET, replacement: '[REDACTED:secret:k]' },
    { name: 'injected', value: INJECTED, replacement: handle },
  ],
  patterns,
  isHandle: handleCheck(ring),
});
const LINE = 'the quick brown fox jumps over the lazy dog; nothing to see here\n';

after(() => closeScanWorker());

/** `size` bytes of text with the secret across every 16 KiB and 64 KiB boundary, at a different offset each time. */
function body(size: number, secret = SECRET): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += LINE.length) b.write(LINE, i, 'latin1');
  for (let k = 1, edge = 16384; edge + secret.length < size; k++, edge += 16384) b.write(secret, edge - (1 + (k % (secret.length - 1))), 'latin1');
  return b;
}

interface Run {
  out: Buffer;
  reds: Redaction[];
  st: ScrubStream;
}

/** Writes `text` in pieces of `sizes` (cycled), honouring backpressure, and collects everything. */
async function run(s: Scrubber, text: Buffer, sizes: readonly number[], offThread: boolean, opts: { maxScanBytes?: number } = {}): Promise<Run> {
  const reds: Redaction[] = [];
  const st = s.createStream({ onRedaction: (r) => reds.push(r), offThread, ...opts });
  assert.ok(offThread ? st instanceof OffloadTransform : st instanceof ScrubTransform);
  const out: Buffer[] = [];
  st.on('data', (c: Buffer) => out.push(c));
  const done = once(st, 'end');
  for (let at = 0, i = 0; at < text.length; i++) {
    const n = sizes[i % sizes.length] as number;
    if (!st.write(text.subarray(at, at + n))) await once(st, 'drain');
    at += n;
  }
  st.end();
  await done;
  return { out: Buffer.concat(out), reds, st };
}

const SIZES = [65536, 16384, 1, 7, 4000, 30001, 16383, 65537, 100];

test('a > 1 MiB body: off-thread output and redactions equal the in-thread ones, no secret survives', async () => {
  const text = body(3 * 1024 * 1024 + 777);
  const here = await run(scrubber, text, SIZES, false);
  const there = await run(scrubber, text, SIZES, true);
  assert.ok(!there.out.includes(SECRET), 'the secret survived');
  assert.ok(there.out.equals(here.out), 'off-thread output differs from the in-thread output');
  assert.deepEqual(there.reds, here.reds);
  assert.equal(
    there.reds.length,
    body(3 * 1024 * 1024 + 777)
      .toString('latin1')
      .split(SECRET).length - 1,
  );
  assert.equal(there.st.scannedBytes, text.length);
  assert.equal(there.st.heldBytes, 0);
  assert.ok(there.st.peakHeldBytes > 0 && there.st.peakHeldBytes <= 64 * 1024, `peak held ${there.st.peakHeldBytes}`);
});

test('many concurrent off-thread streams keep their order and content', async () => {
  const texts = Array.from({ length: 8 }, (_, i) => Buffer.concat([body(1024 * 1024 + i * 4099), Buffer.from(`${GH} ${INJECTED} ${i}\n`)]));
  const want = await Promise.all(texts.map((t, i) => run(scrubber, t, SIZES.slice(i % SIZES.length), false)));
  const got = await Promise.all(texts.map((t, i) => run(scrubber, t, SIZES.slice(i % SIZES.length), true)));
  for (let i = 0; i < texts.length; i++) {
    assert.ok((got[i]?.out as Buffer).equals(want[i]?.out as Buffer), `stream ${i} differs`);
    assert.deepEqual(got[i]?.reds, want[i]?.reds, `stream ${i}: redactions`);
    for (const f of [SECRET, INJECTED, GH]) assert.ok(!got[i]?.out.includes(f), `stream ${i}: ${f.slice(0, 8)}… survived`);
  }
});

test('off-thread: an injected secret becomes its handle; a handle-shaped token that does not open with the key is redacted', async () => {
  const text = Buffer.concat([body(1024 * 1024 + 5), Buffer.from(`{"a":"${INJECTED}","b":"${handle}","c":"${forged}"}\n`)]);
  const there = await run(scrubber, text, [16384], true);
  const here = await run(scrubber, text, [16384], false);
  assert.ok(there.out.equals(here.out));
  const tail = there.out.subarray(there.out.length - 2000).toString('latin1');
  assert.ok(!tail.includes(INJECTED));
  assert.equal(tail.split(handle).length - 1, 2, 'the injected secret is replaced by the handle and the genuine handle passes');
  assert.ok(!tail.includes(RUN) && tail.includes('"c":"trt_AbC-_[REDACTED:aws'), 'a handle-shaped token that does not open with the key is not shielded');
});

test('off-thread: a paused stream is flushed up to its last line feed after the idle delay', async () => {
  const st = scrubber.createStream({ idleFlushMs: 20, offThread: true });
  const out: Buffer[] = [];
  st.on('data', (c: Buffer) => out.push(c));
  // Less than two windows: held until the idle flush.
  st.write(Buffer.from(`data: {"v":"${SECRET}"}\n\ndata: {"w":"${SECRET.slice(0, 10)}`));
  await once(st, 'data');
  const first = Buffer.concat(out).toString('latin1');
  assert.equal(first, 'data: {"v":"[REDACTED:secret:k]"}\n\n');
  assert.ok(st.heldBytes > 0, 'the unfinished line stays held');
  st.end(Buffer.from(`${SECRET.slice(10)}"}\n`));
  await once(st, 'end');
  assert.equal(Buffer.concat(out).toString('latin1'), `${first}data: {"w":"[REDACTED:secret:k]"}\n`);
});

test('off-thread: the scan limit scans the first bytes and passes the rest unscanned, as in-thread', async () => {
  const text = body(2 * 1024 * 1024);
  const limit = 1024 * 1024 + 12345;
  const here = await run(scrubber, text, SIZES, false, { maxScanBytes: limit });
  const there = await run(scrubber, text, SIZES, true, { maxScanBytes: limit });
  assert.ok(there.out.equals(here.out));
  assert.deepEqual(there.reds, here.reds);
  assert.equal(there.st.scannedBytes, limit);
  const cut = there.out.length - (text.length - limit);
  assert.ok(!there.out.subarray(0, cut).includes(SECRET), 'a secret before the limit survived');
  assert.ok(there.out.subarray(cut).includes(SECRET), 'the rest passes unscanned (so this test can tell)');
});

test('a worker killed mid-stream fails its streams closed; the next stream works', async () => {
  const text = body(4 * 1024 * 1024);
  const streams = [0, 1, 2].map(() => scrubber.createStream({ offThread: true }));
  const outs = streams.map((st) => {
    const o: Buffer[] = [];
    st.on('data', (c: Buffer) => o.push(c));
    return o;
  });
  const errors = streams.map((st) => once(st, 'error').then(([e]) => e as Error));
  for (const st of streams) st.write(text.subarray(0, 1024 * 1024));
  await Promise.all(streams.map((st) => once(st, 'data')));
  await killScanWorkerForTest();
  for (const st of streams) st.write(text.subarray(1024 * 1024));
  for (const [i, e] of (await Promise.all(errors)).entries()) {
    assert.ok(e instanceof TurretError && e.code === 'internal_error', `stream ${i}: ${String(e)}`);
    const got = Buffer.concat(outs[i] as Buffer[]);
    assert.ok(got.length < text.length, 'not everything was sent');
    assert.ok(text.toString('latin1').split(SECRET).join('[REDACTED:secret:k]').startsWith(got.toString('latin1')), `stream ${i}: what was sent is a scanned prefix`);
  }
  const next = await run(scrubber, text, SIZES, true);
  assert.ok(next.out.equals((await run(scrubber, text, SIZES, false)).out));
});

test('a scrubber that cannot be rebuilt in the worker (patterns not from compilePatterns) scans in-thread', () => {
  const s = compileScrubber({ secrets: [{ name: 'k', value: SECRET, replacement: 'x' }], patterns: patterns.slice(1) });
  assert.ok(s.createStream({ offThread: true }) instanceof ScrubTransform);
  const noKey = compileScrubber({ secrets: [], patterns, isHandle: () => false });
  assert.ok(noKey.createStream({ offThread: true }) instanceof ScrubTransform);
});

test("the worker's side: an engine that throws fails its own stream only", () => {
  const posted: FromWorker[] = [];
  const scanner = new Scanner((m) => posted.push(m));
  const orig = ScrubEngine.prototype.write;
  ScrubEngine.prototype.write = function (this: ScrubEngine, b: Buffer): Buffer {
    if (b.includes('BOOM')) throw new Error('engine fault (test)');
    return orig.call(this, b);
  };
  try {
    for (const s of [1, 2])
      scanner.handle({ t: 'open', s, scrubber: 1, patterns: 1, specs: BUILTIN_PATTERNS, secrets: [{ name: 'k', value: SECRET, replacement: '[K]' }], maxHold: 65536 });
    const ab = (t: string): ArrayBuffer => new Uint8Array(Buffer.from(t)).buffer;
    scanner.handle({ t: 'write', s: 1, buf: ab(`BOOM ${SECRET}`) });
    scanner.handle({ t: 'write', s: 2, buf: ab(`ok ${SECRET}`) });
    scanner.handle({ t: 'write', s: 1, buf: ab('after') });
    scanner.handle({ t: 'end', s: 2, buf: ab(' end') });
  } finally {
    ScrubEngine.prototype.write = orig;
  }
  assert.deepEqual(
    posted.map((m) => [m.s, m.t]),
    [
      [1, 'fail'],
      [2, 'out'],
      [1, 'fail'],
      [2, 'out'],
    ],
  );
  const out = posted.filter((m) => m.t === 'out').map((m) => Buffer.from(m.out ?? new ArrayBuffer(0)).toString());
  assert.equal(out.join(''), 'ok [K] end');
  for (const m of posted) assert.ok(!JSON.stringify(m).includes(SECRET));
});

test("the event loop's side: a failed answer fails that stream (internal_error), the others go on", async () => {
  const text = body(1024 * 1024 + 3);
  const a = scrubber.createStream({ offThread: true }) as OffloadTransform;
  const b = run(scrubber, text, SIZES, true);
  const err = once(a, 'error');
  a.write(text);
  a.answer({ t: 'fail', s: 0, message: 'engine fault (test)' });
  const [e] = (await err) as [Error];
  assert.ok(e instanceof TurretError && e.code === 'internal_error', String(e));
  assert.ok((await b).out.equals((await run(scrubber, text, SIZES, false)).out));
});
