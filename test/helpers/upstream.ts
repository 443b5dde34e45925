/**
 * Local upstreams for integration tests (tokenizer's model: the upstream echoes exactly what it
 * received, so tests assert what arrived). HTTPS uses the committed test-only CA in
 * test/fixtures; everything listens on 127.0.0.1 with a port chosen by the OS.
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo, Socket } from 'node:net';

export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures');
export const UPSTREAM_CA_FILE = path.join(FIXTURES, 'upstream-ca.crt');

/** Destroys `sockets`, then closes every server; resolves when all have closed. */
export function closeServers(sockets: Iterable<{ destroy(): unknown }>, ...servers: Array<{ close(cb: () => void): unknown }>): Promise<void> {
  for (const s of sockets) s.destroy();
  return Promise.all(servers.map((srv) => new Promise<void>((resolve) => srv.close(() => resolve())))).then(() => undefined);
}

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

export interface Upstream {
  port: number;
  /** Every request the upstream received, in order. */
  received: Received[];
  /** TCP connections accepted (to prove "nothing connected"). */
  connections: number;
  close(): Promise<void>;
}

/** Default handler: JSON echo of method, url, headers and body. */
export const echo: Handler = (req, res, body) => {
  const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString('utf8') });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
  res.end(out);
};

export async function startUpstream(o: { tls?: boolean; handler?: Handler; host?: string } = {}): Promise<Upstream> {
  const handler = o.handler ?? echo;
  const received: Received[] = [];
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: body.toString('utf8') });
      handler(req, res, body);
    });
  };
  const server =
    o.tls === false
      ? http.createServer(onRequest)
      : https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, onRequest);
  const state = { connections: 0 };
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    state.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, o.host ?? '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    received,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
