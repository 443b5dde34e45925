/**
 * The shared coarse clock (proxy/coarse-timers.ts): timeouts of a second or more are entries
 * checked by one ticking timer, shorter ones native timers. What must hold whatever the load:
 * never early, fired once, in deadline order, cleared ones never, re-armed ones at their new time,
 * one that throws stops neither the others nor the clock, and a clock held up by a busy event loop
 * fires what came due as soon as it runs.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { COARSE_MIN_MS, CoarseTimeout, armedCount } from '../../src/proxy/coarse-timers.js';

/** Resolves with the argument of the first firing of a timeout made with it. */
function firing<A>(): { fn: (a: A) => void; fired: Promise<A>; count: () => number } {
  let n = 0;
  let resolve!: (a: A) => void;
  const fired = new Promise<A>((r) => (resolve = r));
  return {
    fn: (a: A) => {
      n++;
      resolve(a);
    },
    fired,
    count: () => n,
  };
}

describe('coarse timers: long timeouts on one shared clock', () => {
  // Every timer of the clock is unref'd, as the proxy's are: a ref'd handle (never firing) keeps
  // the test's event loop alive while it waits for them.
  let keep: NodeJS.Timeout | undefined;
  beforeEach(() => void (keep = setInterval(() => {}, 3_600_000)));
  afterEach(() => clearInterval(keep));

  it('a coarse timeout fires once, never before its time, with its argument; the clock then holds nothing', async () => {
    const f = firing<string>();
    const armedAt = performance.now();
    const t = new CoarseTimeout(f.fn, 'arg-1').arm(COARSE_MIN_MS);
    assert.equal(t.armed, true);
    assert.equal(armedCount(), 1);
    assert.equal(await f.fired, 'arg-1');
    assert.ok(performance.now() - armedAt >= COARSE_MIN_MS, 'never early');
    assert.equal(t.armed, false);
    assert.equal(f.count(), 1);
    assert.equal(armedCount(), 0);
  });

  it('a short timeout is a native timer (not on the shared clock) and fires once', async () => {
    const f = firing<number>();
    const t = new CoarseTimeout(f.fn, 7).arm(COARSE_MIN_MS - 1);
    assert.equal(armedCount(), 0, 'a native timer, not an entry of the shared clock');
    assert.equal(await f.fired, 7);
    assert.equal(t.armed, false);
    assert.equal(f.count(), 1);
  });

  it('cleared timeouts never fire; the others fire in deadline order, not arming order; a re-armed one at its new time', async () => {
    const order: string[] = [];
    const done = firing<void>();
    const push = (s: string): void => {
      order.push(s);
      if (s === 'last') done.fn();
    };
    // Arming order is not deadline order; all come due within one tick of each other.
    const late = new CoarseTimeout(push, 'c').arm(COARSE_MIN_MS + 300);
    const early = new CoarseTimeout(push, 'a').arm(COARSE_MIN_MS);
    const mid = new CoarseTimeout(push, 'b').arm(COARSE_MIN_MS + 150);
    const cleared = new CoarseTimeout(push, 'never').arm(COARSE_MIN_MS);
    const clearedShort = new CoarseTimeout(push, 'never-short').arm(10);
    // Re-armed before it fires: moves from the native timer to the clock and back out.
    const moved = new CoarseTimeout(push, 'moved').arm(5);
    moved.arm(COARSE_MIN_MS + 200);
    const last = new CoarseTimeout(push, 'last').arm(COARSE_MIN_MS + 400);
    cleared.clear();
    clearedShort.clear();
    assert.equal(armedCount(), 5);
    await done.fired;
    assert.deepEqual(order, ['a', 'b', 'moved', 'c', 'last']);
    for (const t of [late, early, mid, cleared, clearedShort, moved, last]) assert.equal(t.armed, false);
    assert.equal(armedCount(), 0);
  });

  it('fires while the event loop was busy past its time: at the first tick after, not lost, and a callback that throws stops neither the others nor the clock', async () => {
    const f = firing<string>();
    const thrower = new CoarseTimeout(() => {
      throw new Error('boom from a coarse timeout');
    }, null).arm(COARSE_MIN_MS);
    new CoarseTimeout(f.fn, 'after-busy').arm(COARSE_MIN_MS);
    // The error is uncaught, as a native timer's would be: captured here so the test sees it.
    const uncaught = new Promise<Error>((resolve) =>
      process.setUncaughtExceptionCaptureCallback((e) => {
        process.setUncaughtExceptionCaptureCallback(null);
        resolve(e as Error);
      }),
    );
    // Hold the event loop past both deadlines (a bounded busy loop: the point is a blocked loop).
    const until = performance.now() + COARSE_MIN_MS + 200;
    while (performance.now() < until);
    assert.equal(await f.fired, 'after-busy');
    assert.match((await uncaught).message, /boom from a coarse timeout/);
    assert.equal(thrower.armed, false);
    // The clock still runs: a timeout armed afterwards fires.
    const g = firing<string>();
    new CoarseTimeout(g.fn, 'still-ticking').arm(COARSE_MIN_MS);
    assert.equal(await g.fired, 'still-ticking');
    assert.equal(armedCount(), 0);
  });

  it('a timeout re-armed from its own callback fires again (a keep-alive wait re-armed per response)', async () => {
    const f = firing<void>();
    let n = 0;
    const t: CoarseTimeout<null> = new CoarseTimeout(() => {
      if (++n < 2) t.arm(COARSE_MIN_MS);
      else f.fn();
    }, null).arm(COARSE_MIN_MS);
    await f.fired;
    assert.equal(n, 2);
    assert.equal(t.armed, false);
    assert.equal(armedCount(), 0);
  });
});
