/**
 * The queue-wait bound (proxy/queue-wait.ts) through a real upstream pool (upstream-h1-pool.ts) and a real upstream on
 * loopback: a request that got a connection is no longer bounded; one still queued behind the
 * agent's only connection is ended with upstream_queue_timeout and never sent.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { boundQueueWait } from '../../src/proxy/queue-wait.js';
import { armedCount } from '../../src/proxy/coarse-timers.js';
import type { H1Answer } from '../../src/proxy/upstream-h1.js';
import { OriginPool } from '../../src/proxy/upstream-h1-pool.js';
import type { ExchangeEnding } from '../../src/proxy/ending.js';
import { isTurretError } from '../../src/core/errors.js';

function get(pool: OriginPool, path: string, bound: { signal: ExchangeEnding; clear(): void }): Promise<H1Answer> {
  return new Promise((resolve, reject) => {
    pool.request({ method: 'GET', path, headers: [['host', 'x']], body: undefined, length: undefined }, bound.signal, bound, (e, a) => (e || !a ? reject(e) : resolve(a)));
  });
}

describe('queue-wait bound: one object and timer per request', () => {
  it('clears when the request gets its connection; a request queued behind a held one ends with upstream_queue_timeout, unsent', async () => {
    const held: http.ServerResponse[] = [];
    const paths: string[] = [];
    const server = http.createServer((req, res) => {
      paths.push(req.url ?? '');
      held.push(res);
      server.emit('held');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const origin = `http://127.0.0.1:${port}`;
    const pool = new OriginPool(
      () =>
        new Promise((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1');
          s.once('connect', () => resolve(s)).once('error', reject);
        }),
      1,
      { headersMs: 60_000, bodyMs: 60_000 },
    );
    try {
      const first = boundQueueWait(60_000, 'a', origin, null);
      assert.equal(first.armed, true);
      const gotFirst = once(server, 'held');
      const p1 = get(pool, '/first', first);
      await gotFirst;
      assert.equal(first.armed, false, 'the bound of a request that reached the upstream is cleared');

      // The only connection is held: the second request waits in the pool's queue until its bound fires.
      const second = boundQueueWait(50, 'a', origin, null);
      const p2 = get(pool, '/second', second);
      const rejected = assert.rejects(p2, (e: unknown) => isTurretError(e) && e.code === 'upstream_queue_timeout' && /agent a's upstream connections/.test(e.message));
      await new Promise<void>((resolve) => second.signal.once('abort', resolve));
      await rejected;
      assert.equal(second.armed, false);
      assert.equal(second.signal.cause?.code, 'upstream_queue_timeout');

      held[0]?.end('ok');
      const r1 = await p1;
      assert.equal(r1.statusCode, 200);
      assert.equal(r1.whole?.toString(), 'ok');
      // The connection freed up: the timed-out request had left the queue, so it is never sent.
      const third = boundQueueWait(60_000, 'a', origin, null);
      const gotThird = once(server, 'held');
      const p3 = get(pool, '/third', third);
      await gotThird;
      held[1]?.end('ok');
      assert.equal((await p3).statusCode, 200);
      assert.deepEqual(paths, ['/first', '/third'], 'the timed-out request never reached the upstream');

      // As forward.ts starts it (`later`): a request handed the idle connection in the same turn
      // has its bound cleared inside request(), and start() then arms no timer at all.
      const fourth = boundQueueWait(60_000, 'a', origin, null, true);
      assert.equal(fourth.armed, true);
      const gotFourth = once(server, 'held');
      const p4 = get(pool, '/fourth', fourth);
      assert.equal(fourth.armed, false, 'cleared in the turn the idle connection was taken');
      fourth.start();
      assert.equal(armedCount(), 0, 'no coarse timer armed for it');
      await gotFourth;
      // The connection is held again: a later-started bound of a queued request still fires.
      const fifth = boundQueueWait(1_000, 'a', origin, null, true);
      const p5 = get(pool, '/fifth', fifth);
      fifth.start();
      assert.equal(armedCount(), 1);
      await assert.rejects(p5, (e: unknown) => isTurretError(e) && e.code === 'upstream_queue_timeout');
      assert.equal(armedCount(), 0);
      held[2]?.end('ok');
      assert.equal((await p4).statusCode, 200);
      assert.deepEqual(paths, ['/first', '/third', '/fourth']);
    } finally {
      pool.close(true);
      server.close();
    }
  });

  it('with no bound (0) no timer runs and nothing is registered', () => {
    const b = boundQueueWait(0, 'a', 'http://x', null);
    assert.equal(b.armed, false);
    b.clear();
    assert.equal(b.signal.aborted, false);
  });
});
