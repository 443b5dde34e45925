/**
 * The upstreams of `npm run bench -- peers`, run as their own process so that serving does not
 * share an event loop with the load generator (on a 2-core machine the client, the proxy and the
 * upstream would otherwise measure each other). One HTTP and one HTTPS server on 127.0.0.1 (the
 * HTTPS one with the committed test-only certificate, which covers *.turret.test and 127.0.0.1):
 *
 *   /small — a ~300-byte JSON object
 *   /big   — 10 MB of pretty-printed JSON, built once, written in 64 KiB chunks
 *
 * Prints one line `{"http":PORT,"https":PORT}` on stdout when both listen; exits on SIGTERM or
 * when its parent closes stdin (so a crashed bench never leaves it behind).
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';

export const BIG_BYTES = 10 * 1000 * 1000;

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures');

const SMALL = Buffer.from(
  JSON.stringify({
    id: 4242,
    login: 'octo-bench',
    url: 'https://api.example.test/repos/org/repo/issues/4242',
    state: 'open',
    labels: ['bug', 'p2'],
    comments: 3,
    created_at: '2026-11-22T10:00:00Z',
    body: 'A small JSON response, typical of an API read.',
  }),
);

function bigBody(): Buffer {
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < BIG_BYTES; i++) {
    const t = JSON.stringify(
      { id: i, login: `user-${i}`, url: `https://api.example.test/repos/org/repo-${i}/issues/${i}`, sha: (i * 2654435761).toString(16).padStart(40, '0'), state: 'open' },
      null,
      2,
    );
    parts.push(t);
    size += t.length + 2;
  }
  return Buffer.from(parts.join(',\n')).subarray(0, BIG_BYTES);
}

// Built only in the upstream process: peers.ts imports BIG_BYTES from this file.
let BIG: Buffer = Buffer.alloc(0);

/**
 * Routes for bench/raw-http.ts's correctness checks of the relay variants: /chunked (no
 * Content-Length), /echo (method, header names and body back as JSON), and raw answers written
 * on the socket: /close (close-delimited body), /badframe (Content-Length and chunked both),
 * /short (Content-Length 10, 5 bytes, then close). False when the URL is none of them.
 */
function checkRoute(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): boolean {
  const raw: Record<string, string> = {
    '/close': 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nclose-delimited body',
    '/badframe': 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    '/short': 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabcde',
  };
  const r = raw[req.url ?? ''];
  if (r !== undefined) return (req.socket.end(r), true);
  if (req.url === '/chunked') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first chunk, ');
    setImmediate(() => res.end('second chunk'));
    return true;
  }
  if (req.url !== '/echo') return false;
  const echo = Buffer.from(JSON.stringify({ method: req.method, headers: Object.keys(req.headers), body: body.toString('latin1') }));
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': echo.length });
  res.end(echo);
  return true;
}

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const body: Buffer[] = [];
  req.on('data', (c: Buffer) => void (req.url === '/echo' && body.push(c)));
  req.on('end', () => {
    if (checkRoute(req, res, Buffer.concat(body))) return;
    if (req.url?.endsWith('/big')) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': BIG.length });
      let off = 0;
      const pump = (): void => {
        while (off < BIG.length) {
          const chunk = BIG.subarray(off, off + 65536);
          off += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': SMALL.length });
    res.end(SMALL);
  });
}

function listen(server: http.Server): Promise<number> {
  // Long keep-alive: proxies pool upstream connections across the gaps between scenarios.
  server.keepAliveTimeout = 60_000;
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  BIG = bigBody();
  const plain = http.createServer(handle);
  const secure = https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, handle);
  const ports = { http: await listen(plain), https: await listen(secure) };
  process.stdout.write(`${JSON.stringify(ports)}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}
