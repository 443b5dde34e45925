/**
 * One agent's pool with one connection (`--limit upstream_connections_per_agent=1`,
 * `upstream_queue_timeout=1s`), counted at the upstream: two concurrent requests share the one
 * connection in order and both succeed; behind a hung request, the next one is answered 503
 * upstream_queue_timeout without ever reaching the upstream (one record each), and once the hung
 * one is answered the connection serves the next request. (faults-fairness covers the same bound
 * with four connections and two agents.)
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ok, pathOf } from '../helpers/h1-upstream.js';
import { bodyOf, useH1 } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';

describe('a pool of one connection per agent', () => {
  const h = useH1({ args: ['--limit', 'upstream_connections_per_agent=1', '--limit', 'upstream_queue_timeout=1s'] });

  /** An upstream whose `/held` requests wait for release(); every request is answered `own:<path>`. */
  const heldUpstream = async (): Promise<{ up: Awaited<ReturnType<typeof h.ups.start>>; release: () => void }> => {
    let release: () => void = () => {};
    const released = new Promise<void>((r) => (release = r));
    const up = await h.ups.start(async (c) => {
      for (let i = 0; i < 20; i++) {
        const p = pathOf(await c.request(i));
        if (p.includes('/held')) await released;
        await c.send(ok(`own:${p}`));
      }
    });
    return { up, release };
  };

  it('two concurrent requests of one agent: both answered, one upstream connection, in order', async () => {
    const { up, release } = await heldUpstream();
    const first = h.px.open(up.port, '/pair/held');
    await up.waitFor(() => up.conns[0]?.requests.length === 1, 'the first request at the upstream');
    const second = h.px.open(up.port, '/pair/second');
    // The second request is on its way; the first is answered only now.
    await new Promise<void>((r) => second.socket.write('', () => r()));
    release();
    const [r1, r2] = await Promise.all([first.done, second.done]);
    assert.equal(bodyOf(r1), 'own:/pair/held');
    assert.equal(bodyOf(r2), 'own:/pair/second');
    assert.equal(up.accepted.plain, 1);
    assert.deepEqual(up.conns[0]?.requests.map(pathOf), ['/pair/held', '/pair/second']);
    assert.equal((await h.px.record('/pair/second')).outcome, 'completed');
    await h.px.record('/pair/held');
    assert.equal(h.px.records('/pair/held').length, 1);
  });

  it('behind a hung request: 503 upstream_queue_timeout, never at the upstream; the connection serves again once the hung one ends', async () => {
    const { up, release } = await heldUpstream();
    const hung = h.px.open(up.port, '/queue/held');
    await up.waitFor(() => up.conns[0]?.requests.length === 1, 'the hung request at the upstream');
    const r = await h.px.send(up.port, '/queue/waiting');
    assert.equal(r.final?.status, 503, r.raw.toString('latin1'));
    assert.equal(header(r.final!, 'x-turret-error')[0], 'upstream_queue_timeout');
    const rec = await h.px.record('/queue/waiting');
    assert.equal(rec.code, 'upstream_queue_timeout');
    assert.equal(rec.outcome, 'failed');
    assert.equal(rec.status, 503);
    assert.equal(h.px.records('/queue/held').length, 0, 'the hung request is still running');

    release();
    assert.equal(bodyOf(await hung.done), 'own:/queue/held');
    await h.px.servesNext(up.port, '/queue/after', '/queue/waiting');
    // Whether the hung request's connection is kept for the next one is not pinned (main closes it).
    assert.deepEqual(
      up.conns.flatMap((c) => c.requests.map(pathOf)),
      ['/queue/held', '/queue/after'],
      'the timed-out request never reached the upstream',
    );
    await h.px.record('/queue/held');
    assert.equal(h.px.records('/queue/held').length, 1);
  });

  it('no upstream script failed', () => {
    assert.deepEqual(h.ups.errors(), []);
  });
});
