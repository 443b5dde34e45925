// Reloads do not overlap and a change that lands during one is not dropped (src/cli/reload.ts).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { serialReloads } from '../../src/cli/reload.js';

/** A reload whose end the test decides: every call is recorded and waits for finish(). */
function controlled(): { calls: string[]; finish: () => void; reload: (why: string) => Promise<void>; started: () => Promise<void> } {
  const calls: string[] = [];
  const ends: Array<() => void> = [];
  let onStart: (() => void) | null = null;
  const reload = serialReloads(
    (why) =>
      new Promise<void>((resolve) => {
        calls.push(why);
        ends.push(resolve);
        onStart?.();
      }),
  );
  return {
    calls,
    reload,
    finish: () => ends.shift()?.(),
    started: () => new Promise<void>((r) => (onStart = r)),
  };
}

it('a reload requested while one runs runs once more after it, with the last reason', async () => {
  const c = controlled();
  const first = c.reload('file change');
  let queuedDone = false;
  const queued = c.reload('SIGHUP').then(() => (queuedDone = true));
  void c.reload('file change 2');
  assert.deepEqual(c.calls, ['file change'], 'never two at once');
  const second = c.started();
  c.finish();
  await first;
  await second;
  assert.deepEqual(c.calls, ['file change', 'file change 2'], 'one more reload, not one per request');
  assert.equal(queuedDone, false, 'a queued request settles only when the reload after it has finished');
  c.finish();
  await queued;
  assert.equal(queuedDone, true);
});

it('a reload requested when none runs starts at once; nothing runs after it unasked', async () => {
  const c = controlled();
  const p = c.reload('SIGHUP');
  assert.deepEqual(c.calls, ['SIGHUP']);
  c.finish();
  await p;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(c.calls, ['SIGHUP']);
});
