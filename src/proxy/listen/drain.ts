/**
 * Graceful shutdown (SIGTERM): stop accepting, let running requests and tunnels finish up to a
 * deadline, then cut what is left.
 *
 * - The listener closes first, so new connections are refused by the kernel, not half-served.
 * - Keep-alive connections waiting for their next request are closed at once (outer: Node's
 *   closeIdleConnections; inside tunnels: the slow-client guard, which knows which are idle),
 *   and every response written during the drain says `Connection: close` (those of requests
 *   under way at the signal too: `unanswered`), so a client finishing a request does not send
 *   another one into a closing proxy.
 * - Idle connections are swept again every 50 ms: a request that ends turns its connection idle.
 * - At the deadline, the remaining sockets are destroyed (tunnels included: a CONNECT socket is
 *   an outer socket).
 */
import type { Server } from 'node:http';
import type { ClientRequest, ClientResponse } from '../stages/exchange.js';
import type { Socket } from 'node:net';
import type { SlowClientGuard } from '../limits.js';

export interface DrainResult {
  /** True when everything finished before the deadline. */
  clean: boolean;
  /** Connections destroyed at the deadline. */
  forced: number;
  ms: number;
}

export interface Drainable {
  outer: Server;
  /** The server of intercepted tunnels' decrypted connections (h1-server.ts). */
  inner: { prependListener(event: 'request', l: (req: ClientRequest, res: ClientResponse) => void): unknown; close(): unknown };
  /** Every socket the outer server accepted and that is still open. */
  sockets: ReadonlySet<Socket>;
  innerGuard: SlowClientGuard;
  /**
   * The responses open when the drain begins (requests under way, or waiting their turn behind
   * others): those not begun yet say Connection: close too.
   */
  unanswered?: () => Iterable<ClientResponse>;
  /** Called once when the deadline passes, before the remaining sockets are destroyed. */
  onDeadline?: () => void;
}

export async function drain(d: Drainable, deadlineMs: number): Promise<DrainResult> {
  const started = Date.now();
  const noKeepAlive = (_req: ClientRequest, res: ClientResponse): void => {
    res.shouldKeepAlive = false;
  };
  // Prepended: the pipeline (connection.ts) answers a refusal synchronously inside its own
  // 'request' listener, so a listener added after it would mark the response once it was written.
  d.outer.prependListener('request', noKeepAlive);
  d.inner.prependListener('request', noKeepAlive);
  // A request that began before the signal has its response still to write: it closes too.
  if (d.unanswered) for (const res of d.unanswered()) if (!res.headersSent) res.shouldKeepAlive = false;
  let listenerClosed = false;
  const closed = new Promise<void>((resolve) => d.outer.close(() => resolve())).then(() => {
    listenerClosed = true;
  });
  // The listener's close callback is not enough: a CONNECT socket can outlive it (Node stops
  // counting a socket once it is handed to 'connect'), and its tunnel_close record must be
  // written before the audit log closes. So the drain ends when every tracked socket is gone.
  let finished: () => void = () => {};
  const allGone = new Promise<void>((resolve) => (finished = resolve));
  const sweep = (): void => {
    d.outer.closeIdleConnections();
    d.innerGuard.closeIdle();
    if (listenerClosed && d.sockets.size === 0) finished();
  };
  sweep();
  const timer = setInterval(sweep, 50);
  let timedOut = false;
  let deadline: NodeJS.Timeout | undefined;
  await Promise.race([
    allGone,
    new Promise<void>((resolve) => {
      deadline = setTimeout(() => {
        timedOut = true;
        resolve();
      }, deadlineMs);
    }),
  ]);
  clearInterval(timer);
  clearTimeout(deadline);
  let forced = 0;
  if (timedOut) {
    d.onDeadline?.();
    const left = [...d.sockets];
    forced = left.length;
    await Promise.all(
      left.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.once('close', () => resolve());
            s.destroy();
          }),
      ),
    );
    await closed;
  }
  d.innerGuard.stop();
  d.inner.close();
  return { clean: !timedOut, forced, ms: Date.now() - started };
}
