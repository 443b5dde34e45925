/**
 * An upstream for fault injection (plain HTTP and HTTPS on 127.0.0.1, same handler): it counts
 * its open sockets, so a test can prove that Turret released a connection, and lets a test hold
 * a request or a response body until the test says so. The first path segment picks the
 * behaviour (the rest names the test case):
 *
 *   /hang          reads the request, never answers (until release())
 *   /slow          sends headers (100 bytes announced) and the first body byte, then one more byte per step()
 *   /headers-only  sends a head announcing 100 bytes, then closes the connection
 *   anything else  reads the whole request, answers 200 "ok <bytes>"
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import { closeServers, FIXTURES } from './upstream.js';

export interface FaultUpstream {
  port: number;
  tlsPort: number;
  /** Sockets open right now (both listeners). */
  open(): number;
  /** Requests whose head arrived, by path. */
  seen: string[];
  /** Resolves once open() === n (checked on every open and close); rejects after maxMs. */
  waitOpen(n: number, maxMs?: number): Promise<void>;
  /** Resolves once `count` requests for exactly the path `p` have arrived; rejects after maxMs. */
  waitSeen(p: string, count?: number, maxMs?: number): Promise<void>;
  /** Resolves once `ok()` holds (checked on every connection, close and request); rejects after maxMs. */
  waitFor(ok: () => boolean, what: string, maxMs?: number): Promise<void>;
  /** Sends the next byte of every /slow response; the number of responses that got one. */
  step(): number;
  /** Answers every held /hang request (200 "late"). */
  release(): void;
  close(): Promise<void>;
}

export async function startFaultUpstream(): Promise<FaultUpstream> {
  const sockets = new Set<Socket>();
  const seen: string[] = [];
  const waiters = new Set<() => void>();
  const held: http.ServerResponse[] = [];
  const slow: http.ServerResponse[] = [];
  /** Body bytes written to each /slow response. */
  const sent = new WeakMap<http.ServerResponse, number>();
  const changed = (): void => {
    for (const w of [...waiters]) w();
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const full = (req.url ?? '/').split('?')[0] ?? '/';
    seen.push(full);
    const p = `/${full.split('/')[1] ?? ''}`;
    changed();
    if (p === '/headers-only') {
      res.socket?.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n');
      return;
    }
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('error', () => {});
    if (p === '/hang') {
      held.push(res);
      return;
    }
    if (p === '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' });
      res.write('a');
      slow.push(res);
      return;
    }
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok ${n}`));
  };
  const plain = http.createServer(handler);
  const secure = https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, handler);
  for (const srv of [plain, secure]) {
    srv.on('connection', (s: Socket) => {
      sockets.add(s);
      changed();
      s.on('close', () => {
        sockets.delete(s);
        changed();
      });
    });
    srv.on('clientError', (_e, s) => s.destroy());
  }
  const listen = (srv: http.Server): Promise<number> => new Promise((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as AddressInfo).port)));
  const [port, tlsPort] = await Promise.all([listen(plain), listen(secure)]);
  const until = (ok: () => boolean, what: () => string, maxMs: number): Promise<void> =>
    new Promise((resolve, reject) => {
      if (ok()) return resolve();
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(what()));
      }, maxMs);
      const check = (): void => {
        if (!ok()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
    });
  return {
    port,
    tlsPort,
    seen,
    open: () => sockets.size,
    waitOpen: (n, maxMs = 10_000) =>
      until(
        () => sockets.size === n,
        () => `upstream still has ${sockets.size} open sockets, expected ${n}`,
        maxMs,
      ),
    waitSeen: (p, count = 1, maxMs = 10_000) =>
      until(
        () => seen.filter((s) => s === p).length >= count,
        () => `upstream saw ${seen.filter((s) => s === p).length} requests for ${p}, expected ${count}`,
        maxMs,
      ),
    waitFor: (ok, what, maxMs = 10_000) => until(ok, () => `${what} (seen ${seen.length}, open ${sockets.size})`, maxMs),
    step: () => {
      let n = 0;
      for (const r of slow) {
        if (r.destroyed || r.writableEnded) continue;
        r.write('b');
        // The 100th byte completes the announced body: end it, so the connection can serve the next request.
        sent.set(r, (sent.get(r) ?? 1) + 1);
        if (sent.get(r) === 100) r.end();
        n++;
      }
      return n;
    },
    release: () => {
      for (const r of held.splice(0)) if (!r.destroyed) r.writeHead(200).end('late');
    },
    close: () => closeServers(sockets, plain, secure),
  };
}
