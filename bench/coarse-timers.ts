/**
 * Developer aid for the hot path (not registered in bench/run.ts): the timer work of one
 * intercepted request before and after the twelfth pass (docs/benchmarks.md "Hot path → Twelfth
 * pass: request side"), in one process, the minimum over rounds (so other load matters less):
 *
 * - before: request_timeout and upstream_queue_timeout as native unref'd timers, armed and
 *   cleared, and the keep-alive wait as `socket.setTimeout(31 s)` after the response and
 *   `setTimeout(0)` at the next head, on a connected socket;
 * - after: the same three on the shared coarse clock (src/proxy/coarse-timers.ts), the keep-alive
 *   one made once and re-armed.
 *
 *   node --import tsx bench/coarse-timers.ts
 */
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { CoarseTimeout } from '../src/proxy/coarse-timers.js';

function fire(_a: unknown): void {}

async function main(): Promise<void> {
  const srv = net.createServer((s) => s.resume()).listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const sock = net.connect((srv.address() as AddressInfo).port, '127.0.0.1');
  await once(sock, 'connect');
  const n = 200_000;
  let before = Infinity;
  let after = Infinity;
  const keepAlive = new CoarseTimeout(fire, null);
  for (let r = 0; r < 25; r++) {
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const deadline = setTimeout(fire, 900_000, i);
      deadline.unref();
      const queue = setTimeout(fire, 30_000, i);
      queue.unref();
      clearTimeout(queue);
      sock.setTimeout(31_000);
      clearTimeout(deadline);
      sock.setTimeout(0);
    }
    before = Math.min(before, Number(process.hrtime.bigint() - t0) / n);
    t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const deadline = new CoarseTimeout(fire, i).arm(900_000);
      const queue = new CoarseTimeout(fire, i).arm(30_000);
      queue.clear();
      keepAlive.arm(31_000);
      deadline.clear();
      keepAlive.clear();
    }
    after = Math.min(after, Number(process.hrtime.bigint() - t0) / n);
  }
  console.log(`timer work per request: native ${before.toFixed(0)} ns, coarse ${after.toFixed(0)} ns (minimum of 25 rounds of ${n})`);
  sock.destroy();
  srv.close();
}

void main();
