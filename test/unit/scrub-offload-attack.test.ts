/**
 * Attack review of the off-thread scan (src/scrub/offload.ts): what the first tests did not
 * reach. Chunks that reach the Transform together (_writev) after the scan limit, and the IdLru
 * both sides keep in step under more scrubbers and pattern sets than it holds, with older
 * streams still open.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { TurretError } from '../../src/core/errors.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber, type Scrubber } from '../../src/scrub/scrubber.js';
import { OffloadTransform, closeScanWorker, killScanWorkerForTest } from '../../src/scrub/offload.js';
import { MAX_WORKER_PATTERN_SETS, MAX_WORKER_SCRUBBERS } from '../../src/scrub/offload-protocol.js';

const SECRET = `fake_${randomBytes(20).toString('hex')}`;
const patterns = compilePatterns(BUILTIN_PATTERNS);
const scrubber = compileScrubber({ secrets: [{ name: 'k', value: SECRET, replacement: '[REDACTED:secret:k]' }], patterns });

after(() => closeScanWorker());

function text(size: number, fill: string): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += fill.length) b.write(fill, i, 'latin1');
  return b;
}

/** Resolves once `n` output bytes were read from `st` (or rejects on its error). */
function received(st: OffloadTransform, out: Buffer[], n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (out.reduce((a, b) => a + b.length, 0) >= n) {
        st.off('data', check);
        resolve();
      }
    };
    st.on('data', check);
    st.once('error', reject);
    check();
  });
}

test('past the scan limit, chunks written together (_writev) all pass, in order, and the stream ends', { timeout: 5_000 }, async () => {
  const limit = 1024 * 1024;
  const st = scrubber.createStream({ offThread: true, maxScanBytes: limit }) as OffloadTransform;
  assert.ok(st instanceof OffloadTransform);
  const out: Buffer[] = [];
  st.on('data', (c: Buffer) => out.push(c));
  const first = text(limit + 4096, 'abcdefghij\n');
  st.write(first);
  // The limit's answer is back once everything written so far came out.
  await received(st, out, first.length);
  const parts = ['B'.repeat(1000), 'C'.repeat(2000), 'D'.repeat(3000)].map((s) => Buffer.from(s));
  st.cork();
  for (const p of parts) st.write(p);
  st.uncork();
  st.end();
  await once(st, 'end');
  assert.equal(Buffer.concat(out).toString('latin1'), first.toString('latin1') + parts.join(''));
});

test('past the scan limit with the limit batch in flight, chunks written together pass after its output, in order', { timeout: 5_000 }, async () => {
  const limit = 1024 * 1024;
  const st = scrubber.createStream({ offThread: true, maxScanBytes: limit }) as OffloadTransform;
  const out: Buffer[] = [];
  st.on('data', (c: Buffer) => out.push(c));
  const first = text(limit + 4096, 'abcdefghij\n');
  const parts = ['B'.repeat(1000), 'C'.repeat(2000), 'D'.repeat(3000), 'E'.repeat(10)].map((s) => Buffer.from(s));
  // One turn: the limit batch goes out with the first write, the rest reaches the Transform while it is in flight.
  st.write(first);
  st.write(parts[0]);
  st.cork();
  for (const p of parts.slice(1)) st.write(p);
  st.uncork();
  st.end();
  await once(st, 'end');
  assert.equal(Buffer.concat(out).toString('latin1'), first.toString('latin1') + parts.join(''));
});

/** Writes `b` then ends; the whole output, or the stream's error. */
async function through(st: OffloadTransform, b: Buffer): Promise<string> {
  const out: Buffer[] = [];
  st.on('data', (c: Buffer) => out.push(c));
  const done = once(st, 'end');
  st.end(b);
  await done;
  return Buffer.concat(out).toString('latin1');
}

test('more scrubbers and pattern sets than the worker keeps, every stream opened before any is written: each gets its own replacement', { timeout: 60_000 }, async () => {
  const n = MAX_WORKER_SCRUBBERS + 44;
  // Pattern set of scrubber i: i / 16 (19 sets, each compiled once per round: ~0.14 s each).
  const sets = Array.from({ length: Math.ceil(n / 16) }, () => compilePatterns(BUILTIN_PATTERNS));
  const scrubbers: Scrubber[] = Array.from({ length: n }, (_, i) =>
    compileScrubber({ secrets: [{ name: `k${i}`, value: SECRET, replacement: `[R${i}]` }], patterns: sets[Math.floor(i / 16)] ?? patterns }),
  );
  const input = Buffer.from(`a ${SECRET} b\n`);
  for (let round = 0; round < 2; round++) {
    // All opens are queued before the first write: the oldest definitions are evicted meanwhile.
    const streams = scrubbers.map((s) => s.createStream({ offThread: true }) as OffloadTransform);
    const outs = await Promise.all(streams.map((st) => through(st, input)));
    for (const [i, o] of outs.entries()) assert.equal(o, `a [R${i}] b\n`, `round ${round}, stream ${i}`);
  }
});

test('a stream destroyed with batches in flight: nothing is pushed after, no error, and the next streams are scanned', { timeout: 10_000 }, async () => {
  const big = text(3 * 1024 * 1024, `x ${SECRET} y\n`);
  for (let k = 0; k < 3; k++) {
    const st = scrubber.createStream({ offThread: true }) as OffloadTransform;
    let after = 0;
    let destroyed = false;
    st.on('data', () => void (destroyed && after++));
    st.on('error', (e) => assert.fail(`error after destroy: ${String(e)}`));
    st.write(big.subarray(0, 1024 * 1024));
    st.write(big.subarray(1024 * 1024));
    destroyed = true;
    st.destroy();
    await once(st, 'close');
    const next = await through(scrubber.createStream({ offThread: true }) as OffloadTransform, big);
    assert.equal(after, 0, 'bytes were pushed after destroy');
    assert.equal(next, big.toString('latin1').split(SECRET).join('[REDACTED:secret:k]'));
  }
});

test('the worker killed right after the end was sent: the stream errors internal_error with a scanned prefix, or ends whole; never ends short', { timeout: 20_000 }, async () => {
  const big = text(2 * 1024 * 1024 + 5, `x ${SECRET} y\n`);
  const want = big.toString('latin1').split(SECRET).join('[REDACTED:secret:k]');
  for (let k = 0; k < 4; k++) {
    const st = scrubber.createStream({ offThread: true }) as OffloadTransform;
    const out: Buffer[] = [];
    st.on('data', (c: Buffer) => out.push(c));
    const settled = new Promise<Error | null>((resolve) => {
      st.once('end', () => resolve(null));
      st.once('error', resolve);
    });
    st.end(big);
    await killScanWorkerForTest();
    const e = await settled;
    const got = Buffer.concat(out).toString('latin1');
    if (e === null) assert.equal(got, want, 'an ended stream is whole');
    else {
      assert.ok(e instanceof TurretError && e.code === 'internal_error', String(e));
      assert.ok(want.startsWith(got) && got.length < want.length, 'a failed stream sent a scanned prefix');
    }
  }
});
