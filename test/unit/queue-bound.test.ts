/**
 * The queue-wait bound (proxy/queue-wait.ts) through a real undici pool and a real upstream on
 * loopback: a request that got a connection is no longer bounded; one still queued behind the
 * agent's only connection is ended with upstream_queue_timeout and never sent.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { boundQueueWait, requestOrAbort, StartReporting } from '../../src/proxy/queue-wait.js';
import { isTurretError } from '../../src/core/errors.js';

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
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const agent = new Agent({ connections: 1 });
    const pool = new StartReporting(agent);
    try {
      const first = boundQueueWait(60_000, 'a', origin, null);
      assert.equal(first.armed, true);
      const gotFirst = once(server, 'held');
      const p1 = requestOrAbort(pool, { origin, path: '/first', method: 'GET', signal: first.signal }, first.signal);
      await gotFirst;
      assert.equal(first.armed, false, 'the bound of a request that reached the upstream is cleared');

      // The only connection is held: the second request waits in undici's queue until its bound fires.
      const second = boundQueueWait(50, 'a', origin, null);
      const p2 = requestOrAbort(pool, { origin, path: '/second', method: 'GET', signal: second.signal }, second.signal);
      const rejected = assert.rejects(p2, (e: unknown) => isTurretError(e) && e.code === 'upstream_queue_timeout' && /agent a's upstream connections/.test(e.message));
      await new Promise<void>((resolve) => second.signal.once('abort', resolve));
      await rejected;
      assert.equal(second.armed, false);
      assert.equal(second.signal.cause?.code, 'upstream_queue_timeout');

      held[0]?.end('ok');
      const r1 = await p1;
      assert.equal(r1.statusCode, 200);
      assert.equal(await r1.body.text(), 'ok');
      // The connection freed up: undici takes the aborted request from its queue and drops it unsent.
      const third = boundQueueWait(60_000, 'a', origin, null);
      const gotThird = once(server, 'held');
      const p3 = requestOrAbort(pool, { origin, path: '/third', method: 'GET', signal: third.signal }, third.signal);
      await gotThird;
      held[1]?.end('ok');
      assert.equal((await p3).statusCode, 200);
      assert.deepEqual(paths, ['/first', '/third'], 'the timed-out request never reached the upstream');
    } finally {
      await agent.destroy();
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
