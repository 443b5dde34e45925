/**
 * Faults in the scrubber's WebAssembly: no memory for the process's long-run instance (the
 * JavaScript loops take over, same finds), and a trap in the keyword loop mid-stream or in one
 * scrubBuffer call (fail closed: an error naming the proxy's scrubber, internal_error, and not
 * one unscanned byte out). This file runs in its own process (node --test), so its first use of
 * the long-run instance is the one made with WebAssembly.Memory failing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { TurretError } from '../../src/core/errors.js';
import { forEachLongRun } from '../../src/scrub/decoded.js';
import { longRuns } from '../../src/scrub/long-runs-wasm.js';
import { Matcher } from '../../src/scrub/matcher.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { WasmPrefilter } from '../../src/scrub/prefilter-wasm.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { jsOnly } from '../helpers/wasm-mode.js';

const VALUE = `fake/${randomBytes(8).toString('hex')}+x`;
const PATTERNS = compilePatterns(BUILTIN_PATTERNS);

test('no memory for the long-run instance: the JavaScript loops find the same (runs, escapes, the matcher)', () => {
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: unknown } }).WebAssembly;
  const real = wasm.Memory;
  wasm.Memory = function (): never {
    throw new RangeError('WebAssembly.Memory(): could not allocate memory');
  };
  const runs: string[] = [];
  const buf = Buffer.concat([Buffer.alloc(1000, ' '), Buffer.alloc(60, 'Q'), Buffer.from(` %2F&#43;\\u0041 ${VALUE.replace('/', '%2f')} `), Buffer.alloc(2000, ' ')]);
  try {
    forEachLongRun(buf, 0, 40, (s, e) => runs.push(`${s}-${e}`));
  } finally {
    wasm.Memory = real;
  }
  assert.equal(
    longRuns({ alphabet: new Uint8Array(256), classes: new Uint8Array(256), escBytes: [0x25, 0x26, 0x5c], escNext: new Uint8Array(256) }),
    null,
    'the instance stays unmade',
  );
  assert.deepEqual(runs, ['1000-1060']);
  const m = new Matcher([{ name: 'k', value: VALUE, replacement: 'H' }], PATTERNS, 1024);
  const dense = Buffer.concat([randomBytes(4000).map((b, i) => (i % 30 === 0 ? 0x25 : b)), buf]);
  const got = m.find(dense, 0);
  assert.deepEqual(
    got,
    jsOnly(() => m.find(dense, 0)),
  );
  assert.ok(
    got.some((c) => c.redaction.kind === 'secret'),
    'the escaped secret was found',
  );
});

const Trap = (globalThis as unknown as { WebAssembly: { RuntimeError: ErrorConstructor } }).WebAssembly.RuntimeError;

/** f() with the keyword loop's WebAssembly trapping from its (after + 1)-th call on. */
function trapping<T>(after: number, f: () => T): T {
  const p = WasmPrefilter.prototype as unknown as { scan: (...a: unknown[]) => number };
  const scan = p.scan;
  let calls = 0;
  p.scan = function (this: unknown, ...a: unknown[]): number {
    if (++calls > after) throw new Trap('memory access out of bounds');
    return scan.apply(this, a);
  };
  try {
    return f();
  } finally {
    p.scan = scan;
  }
}

test('a trap in the keyword loop fails closed: scrubBuffer throws internal_error, a stream errors without passing unscanned bytes', async () => {
  const s = compileScrubber({ secrets: [{ name: 'k', value: VALUE, replacement: '[K]' }], patterns: PATTERNS });
  const body = Buffer.alloc(400_000, 'a');
  for (let at = 5000; at < body.length - 100; at += 50_000) body.write(` ${VALUE} `, at, 'latin1');
  assert.throws(
    () => trapping(0, () => s.scrubBuffer(body.subarray(0, 3000))),
    (e: unknown) => e instanceof TurretError && e.code === 'internal_error' && e.status === 500,
  );
  for (const after of [0, 1, 3]) {
    const out: Buffer[] = [];
    const err = await trapping(after, async () => {
      const st = s.createStream();
      st.on('data', (c: Buffer) => out.push(c));
      const failed = once(st, 'error');
      for (let i = 0; i < body.length; i += 16384) st.write(body.subarray(i, i + 16384));
      st.end();
      const [e] = (await failed) as [unknown];
      return e;
    });
    assert.ok(err instanceof TurretError && err.code === 'internal_error', `after ${after}: ${String(err)}`);
    const sent = Buffer.concat(out).toString('latin1');
    assert.ok(!sent.includes(VALUE), `after ${after}: a secret went out`);
    assert.ok(sent.length < body.length, `after ${after}: the body did not go out whole (${sent.length})`);
    if (after === 3) assert.ok(sent.includes('[K]'), 'what went out before the trap was scanned');
  }
});

test('memory: one WebAssembly memory per keyword index whatever the number of streams (100 at once), never grown; a huge input is segmented', () => {
  type Mem = { buffer: ArrayBuffer };
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => Mem } }).WebAssembly;
  const real = wasm.Memory;
  const made: Array<{ mem: Mem; bytes: number }> = [];
  wasm.Memory = function (d: { initial: number }): Mem {
    const mem = new real(d);
    made.push({ mem, bytes: mem.buffer.byteLength });
    return mem;
  } as unknown as typeof real;
  try {
    const s = compileScrubber({ secrets: [{ name: 'k', value: VALUE, replacement: '[K]' }], patterns: PATTERNS });
    const body = Buffer.alloc(140_000, '{"id": 1, "note": "lorem ipsum pat"},\n');
    for (let at = 1000; at < body.length - 100; at += 7001) body.write(` ${VALUE} `, at, 'latin1');
    // 100 streams at once, chunk by chunk in turn.
    const incs = Array.from({ length: 100 }, () => s.createIncremental());
    const outs = incs.map((): Buffer[] => []);
    for (let i = 0; i < body.length; i += 16384) incs.forEach((inc, k) => outs[k]?.push(inc.write(body.subarray(i, i + 16384))));
    incs.forEach((inc, k) => outs[k]?.push(inc.end()));
    const want = s.scrubBuffer(body).buf;
    for (const o of outs) assert.ok(Buffer.concat(o).equals(want));
    assert.ok(!want.includes(VALUE));
    // One 32 MiB input in one call.
    const huge = Buffer.alloc(32 * 1024 * 1024, '{"id": 1, "note": "lorem ipsum pat"},\n');
    huge.write(VALUE, huge.length - 100, 'latin1');
    assert.ok(!s.scrubBuffer(huge).buf.includes(VALUE));
  } finally {
    wasm.Memory = real;
  }
  assert.equal(made.length, 1, `WebAssembly memories made: ${made.length}`);
  for (const m of made) assert.equal(m.mem.buffer.byteLength, m.bytes, 'the memory never grew');
  assert.ok((made[0]?.bytes ?? 0) <= 2 * 1024 * 1024, `the keyword index's memory: ${made[0]?.bytes} bytes`);
});

test('memory: the WebAssembly memories of dropped scrubbers are released (what a cache eviction leaves)', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  type Mem = { buffer: ArrayBuffer };
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => Mem } }).WebAssembly;
  const real = wasm.Memory;
  let made = 0;
  let freed = 0;
  const registry = new FinalizationRegistry<number>(() => freed++);
  wasm.Memory = function (d: { initial: number }): Mem {
    const mem = new real(d);
    registry.register(mem, made++);
    return mem;
  } as unknown as typeof real;
  try {
    const body = Buffer.alloc(4096, 'x pat ');
    for (let i = 0; i < 40; i++) compileScrubber({ secrets: [{ name: 'k', value: `${VALUE}${i}`, replacement: '[K]' }], patterns: PATTERNS }).scrubBuffer(body);
  } finally {
    wasm.Memory = real;
  }
  assert.equal(made, 40, 'one memory per scrubber that scanned a long input');
  // Finalizers run in tasks after a full collection: collect and yield, a bounded number of times.
  for (let round = 0; round < 50 && freed < made; round++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(freed, made, `memories released: ${freed} of ${made}`);
});
