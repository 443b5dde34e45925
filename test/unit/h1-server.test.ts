/**
 * Turret's own HTTP/1.1 server (src/proxy/listen/h1-server.ts) against node:http's, side by side:
 * the same request bytes on a real loopback connection into each, the same handler, and the bytes
 * each wrote back compared (the Date field aside). Plus the method table it learns from llhttp.
 * Real sockets, no mocks.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { EventEmitter, once } from 'node:events';
import { H1Server } from '../../src/proxy/listen/h1-server.js';
import { methods } from '../../src/proxy/listen/h1-methods.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A listener whose connections go to `server` by 'connection', as server.ts hands over tunnels. */
async function front(server: EventEmitter): Promise<{ port: number; close(): void }> {
  const l = net.createServer((s) => server.emit('connection', s));
  l.listen(0, '127.0.0.1');
  await once(l, 'listening');
  return { port: (l.address() as AddressInfo).port, close: () => l.close() };
}

/** Sends `parts` (one write each, in turn; then EOF when `end`), then reads until the server closes or goes quiet. */
async function exchange(port: number, parts: string[], end: boolean, quietMs = 150): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => {});
  for (const p of parts) s.write(p);
  if (end) s.end();
  await new Promise<void>((resolve) => {
    let t = setTimeout(done, quietMs);
    function done(): void {
      s.destroy();
      resolve();
    }
    s.on('data', () => {
      clearTimeout(t);
      t = setTimeout(done, quietMs);
    });
    s.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
  return Buffer.concat(chunks)
    .toString('latin1')
    .replace(/Date: [^\r]*\r\n/g, 'Date: -\r\n');
}

const HOST = 'Host: a\r\n';

/** Handlers that write a response the ways the stages do (small body, streamed, refusal, trailers). */
const handlers: Record<string, Handler> = {
  small: (_req, res) => {
    res.writeHead(200, ['content-type', 'text/plain', 'content-length', '5']);
    res.end(Buffer.from('hello'));
  },
  streamed: (_req, res) => {
    res.writeHead(200, ['content-type', 'text/plain']);
    res.flushHeaders();
    res.write(Buffer.from('ab'));
    setImmediate(() => {
      res.write(Buffer.from('cde'));
      res.end();
    });
  },
  refusal: (req, res) => {
    const body = 'Turret refused this request.\n';
    res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-turret-error': 'policy_denied' });
    res.end(req.method === 'HEAD' ? undefined : body);
  },
  closing: (_req, res) => {
    const body = 'bad\n';
    res.writeHead(400, { 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  },
  trailers: (_req, res) => {
    res.writeHead(200, ['trailer', 'x-t']);
    res.write(Buffer.from('body'));
    res.addTrailers([['x-t', '1']]);
    res.end();
  },
  empty: (_req, res) => {
    res.writeHead(204, ['x-a', '1']);
    res.end();
  },
  echo: (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const b = Buffer.concat(chunks);
      res.writeHead(200, ['content-length', String(b.length), 'x-method', req.method ?? '', 'x-version', req.httpVersion]);
      res.end(b);
    });
  },
  // Fields node:http refuses: the same error (class, code, message) from each, and the response
  // still writable after it.
  badFields: (_req, res) => {
    const seen: string[] = [];
    const tries: unknown[][] = [['bad name', 'x'], ['x-a', 'a\nb'], ['x-u', undefined], ['', 'x'], ['x-nul', 'a\0b'], [['x-pair', 'a\rb']]];
    for (const fields of tries) {
      try {
        res.writeHead(200, fields as http.OutgoingHttpHeader[]);
        seen.push('accepted');
      } catch (e) {
        const err = e as Error & { code?: string };
        seen.push(`${err.constructor.name} ${err.name} ${String(err.code)} ${err.message}`);
      }
    }
    const body = seen.join('\n');
    res.writeHead(200, ['content-length', String(Buffer.byteLength(body))]);
    res.end(body);
  },
  // Heads that take h1-head.ts's less travelled turns, picked by the path: framing fields given as
  // empty arrays (no line: as if not given), in odd case, repeated; five statuses and reasons in
  // turn on one connection.
  heads: (req, res) => {
    const u = req.url ?? '';
    if (u === '/empty') res.writeHead(200, ['date', [], 'connection', [], 'content-length', [], 'transfer-encoding', [], 'trailer', [], 'x-a', '1'] as unknown as string[]);
    else if (u === '/odd') res.writeHead(200, ['DATE', 'Wed, 01 Jan 2020 00:00:00 GMT', 'CONTENT-LENGTH', '3', 'Connection', 'Keep-Alive', 'KEEP-ALIVE', 'timeout=9']);
    else if (u === '/arrays')
      res.writeHead(200, [
        ['Set-Cookie', ['a=1', 'b=2']],
        ['Cookie', ['x', 'y']],
        ['X-Empty', []],
        ['set-cookie', 'c=3'],
      ] as unknown as string[]);
    else if (u === '/close') res.writeHead(200, { Connection: 'Close', 'X-B': '2' });
    else if (u === '/chunked') res.writeHead(200, ['Transfer-Encoding', 'chunked', 'TRAILER', 'x-t']);
    else if (u.startsWith('/s/')) {
      const [code, reason] = (u.slice(3).split('-') as [string, string | undefined]).map((x) => x && decodeURIComponent(x));
      if (reason !== undefined) res.writeHead(Number(code), reason, ['x-c', '1']);
      else res.writeHead(Number(code), ['x-c', '1']);
    }
    res.end(u === '/close' || u === '/empty' || u === '/odd' || u.startsWith('/s/') ? 'abc' : 'ok');
  },
  slowFirst: (req, res) => {
    const answer = (): void => {
      res.writeHead(200, ['content-length', String(req.url?.length ?? 0)]);
      res.end(req.url);
    };
    if (req.url === '/slow') setTimeout(answer, 30);
    else answer();
  },
};

interface Pair {
  node: { port: number; close(): void };
  turret: { port: number; close(): void };
}

async function pair(handler: Handler, keepAliveTimeout = 30_000): Promise<Pair> {
  const onError = (_e: Error, socket: net.Socket): void => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
  };
  const n = http.createServer({ maxHeaderSize: 8192, keepAliveTimeout, requireHostHeader: false, joinDuplicateHeaders: false, insecureHTTPParser: false });
  n.on('request', handler).on('clientError', onError);
  const t = new H1Server({ maxHeaderSize: 8192, keepAliveTimeout });
  t.on('request', handler).on('clientError', onError);
  return { node: await front(n), turret: await front(t) };
}

const cases: Array<{ name: string; handler: keyof typeof handlers; parts: string[]; end?: boolean }> = [
  { name: 'a small body with its length, keep-alive', handler: 'small', parts: [`GET / HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'two requests in one write', handler: 'small', parts: [`GET /1 HTTP/1.1\r\n${HOST}\r\nGET /2 HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'HEAD of a small body', handler: 'small', parts: [`HEAD / HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'HTTP/1.0 without keep-alive', handler: 'small', parts: [`GET / HTTP/1.0\r\n\r\n`] },
  { name: 'HTTP/1.0 with keep-alive', handler: 'small', parts: [`GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n`] },
  { name: 'Connection: close from the client', handler: 'small', parts: [`GET / HTTP/1.1\r\n${HOST}Connection: close\r\n\r\nGET /after HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'a streamed body of unknown length (chunked)', handler: 'streamed', parts: [`GET / HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'a streamed body to HTTP/1.0 (close-delimited)', handler: 'streamed', parts: [`GET / HTTP/1.0\r\n\r\n`] },
  { name: 'a streamed HEAD', handler: 'streamed', parts: [`HEAD / HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'a refusal with a string body', handler: 'refusal', parts: [`GET / HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'a refusal to HEAD', handler: 'refusal', parts: [`HEAD / HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'Connection: close from the response, a request after it', handler: 'closing', parts: [`GET / HTTP/1.1\r\n${HOST}\r\nGET /2 HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'trailers on a chunked body', handler: 'trailers', parts: [`GET / HTTP/1.1\r\n${HOST}\r\n`] },
  { name: '204 without a body', handler: 'empty', parts: [`GET / HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'fields node:http refuses, then a response', handler: 'badFields', parts: [`GET / HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'a body by length', handler: 'echo', parts: [`POST / HTTP/1.1\r\n${HOST}Content-Length: 5\r\n\r\nhel`, 'lo'] },
  { name: 'a chunked body with a trailer', handler: 'echo', parts: [`POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n`] },
  { name: 'Expect: 100-continue', handler: 'echo', parts: [`POST / HTTP/1.1\r\n${HOST}Expect: 100-continue\r\nContent-Length: 2\r\n\r\nok`] },
  { name: 'another expectation (417)', handler: 'echo', parts: [`POST / HTTP/1.1\r\n${HOST}Expect: teapot\r\nContent-Length: 2\r\n\r\nok`] },
  { name: 'an RTSP method', handler: 'echo', parts: [`ANNOUNCE / RTSP/1.0\r\n${HOST}\r\n`] },
  {
    name: 'pipelined, the first answer slow',
    handler: 'slowFirst',
    parts: [`GET /slow HTTP/1.1\r\n${HOST}\r\nGET /fast HTTP/1.1\r\n${HOST}\r\nGET /last HTTP/1.1\r\n${HOST}\r\n`],
  },
  {
    name: 'a parse error after a request',
    handler: 'slowFirst',
    parts: [`GET /slow HTTP/1.1\r\n${HOST}\r\nGET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n`],
  },
  { name: 'framing fields given as empty arrays count as not given', handler: 'heads', parts: [`GET /empty HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'framing fields in odd case, Keep-Alive given', handler: 'heads', parts: [`GET /odd HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'repeated fields as arrays, cookies joined, an empty one', handler: 'heads', parts: [`GET /arrays HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'Connection: Close given in odd case', handler: 'heads', parts: [`GET /close HTTP/1.1\r\n${HOST}\r\nGET /after HTTP/1.1\r\n${HOST}\r\n`] },
  { name: 'Transfer-Encoding and a Trailer given', handler: 'heads', parts: [`GET /chunked HTTP/1.1\r\n${HOST}\r\n`] },
  {
    name: 'statuses and reasons in turn on one connection (the status line is not the last one made)',
    handler: 'heads',
    parts: [['/s/200', '/s/404', '/s/404-Not%20Here', '/s/200-Fine', '/s/200', '/s/599', '/s/200-OK'].map((p) => `GET ${p} HTTP/1.1\r\n${HOST}\r\n`).join('')],
  },
  { name: 'a bare LF', handler: 'small', parts: [`GET / HTTP/1.1\n${HOST}\r\n`] },
  { name: 'a head over maxHeaderSize', handler: 'small', parts: [`GET / HTTP/1.1\r\n${HOST}X: ${'a'.repeat(9000)}\r\n\r\n`] },
  { name: 'EOF inside a body', handler: 'echo', parts: [`POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5\r\nab`], end: true },
  { name: 'EOF after a complete request', handler: 'small', parts: [`GET / HTTP/1.1\r\n${HOST}\r\n`], end: true },
];

describe('h1-server: the same bytes as node:http', () => {
  const pairs = new Map<string, Pair>();
  before(async () => {
    for (const h of Object.keys(handlers)) pairs.set(h, await pair(handlers[h] as Handler));
  });
  after(() => {
    for (const p of pairs.values()) {
      p.node.close();
      p.turret.close();
    }
  });

  for (const c of cases) {
    it(c.name, async () => {
      const p = pairs.get(c.handler) as Pair;
      const [fromNode, fromTurret] = await Promise.all([exchange(p.node.port, c.parts, c.end === true), exchange(p.turret.port, c.parts, c.end === true)]);
      assert.ok(fromNode.length > 0 || c.name === 'EOF inside a body', 'node:http answered');
      assert.equal(fromTurret, fromNode);
    });
  }
});

describe('h1-server: servers with different keep-alive timeouts, in turn', () => {
  it("each head names its own server's Keep-Alive timeout (the line is not the last one made)", async () => {
    const pairs = [await pair(handlers.small as Handler, 5_000), await pair(handlers.small as Handler, 30_000), await pair(handlers.small as Handler, 7_000)];
    try {
      for (const p of [...pairs, ...pairs]) {
        const parts = [`GET / HTTP/1.1\r\n${HOST}\r\n`];
        const [fromNode, fromTurret] = await Promise.all([exchange(p.node.port, parts, false), exchange(p.turret.port, parts, false)]);
        assert.match(fromNode, /Keep-Alive: timeout=(5|30|7)\r\n/);
        assert.equal(fromTurret, fromNode);
      }
    } finally {
      for (const p of pairs) {
        p.node.close();
        p.turret.close();
      }
    }
  });
});

describe('h1-server: method names', () => {
  it("learns llhttp's method numbers as node:http's allMethods has them (PRI aside: llhttp stops at an HTTP/2 preface)", () => {
    const quiet = process.noDeprecation;
    process.noDeprecation = true;
    const all = (process as unknown as { binding(n: string): { allMethods: string[] } }).binding('http_parser').allMethods;
    process.noDeprecation = quiet;
    const table = methods();
    assert.deepEqual(
      all.map((m, i) => (m === 'PRI' ? undefined : table[i])),
      all.map((m) => (m === 'PRI' ? undefined : m)),
    );
  });
});

/**
 * Sends each part once the answers before it have arrived (`after`: how many responses end in
 * `marker` before the part is written), then waits for the server to close the connection.
 */
async function untilClosed(port: number, parts: Array<{ after: number; data: string }>, marker: string): Promise<{ data: string; byServer: boolean }> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  let data = '';
  let next = 0;
  const send = (): void => {
    while (next < parts.length && data.split(marker).length - 1 >= (parts[next] as { after: number }).after) s.write((parts[next++] as { data: string }).data);
  };
  s.on('data', (c: Buffer) => {
    data += c.toString('latin1');
    send();
  });
  s.on('error', () => {});
  send();
  await once(s, 'close');
  return { data: data.replace(/Date: [^\r]*\r\n/g, 'Date: -\r\n'), byServer: next === parts.length };
}

describe('h1-server: the keep-alive wait (coarse clock) closes an idle connection as node:http does', () => {
  // keepAliveTimeout 1 s: the wait is 2 s (Node's 1 s margin), on the shared coarse clock
  // (coarse-timers.ts), as the proxy's 31 s is.
  const handler: Handler = (req, res) => {
    res.writeHead(200, ['content-length', String(req.url?.length ?? 0)]);
    res.end(req.url);
  };
  let node: { port: number; close(): void };
  let turret: { port: number; close(): void };
  before(async () => {
    const n = http.createServer({ keepAliveTimeout: 1000, requireHostHeader: false, joinDuplicateHeaders: false });
    n.on('request', handler);
    const t = new H1Server({ maxHeaderSize: 8192, keepAliveTimeout: 1000 });
    t.on('request', handler);
    node = await front(n);
    turret = await front(t);
  });
  after(() => {
    node.close();
    turret.close();
  });

  const cases: Array<{ name: string; parts: Array<{ after: number; data: string }> }> = [
    { name: 'idle after one answer', parts: [{ after: 0, data: `GET /one HTTP/1.1\r\n${HOST}\r\n` }] },
    {
      name: 're-armed by keep-alive reuse: a second request after the first answer, then idle',
      parts: [
        { after: 0, data: `GET /one HTTP/1.1\r\n${HOST}\r\n` },
        { after: 1, data: `GET /two HTTP/1.1\r\n${HOST}\r\n` },
      ],
    },
    {
      name: 'a partial head in the wait, never completed',
      parts: [
        { after: 0, data: `GET /one HTTP/1.1\r\n${HOST}\r\n` },
        { after: 1, data: `GET /two HTTP/1.1\r\n` },
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const [fromNode, fromTurret] = await Promise.all([untilClosed(node.port, c.parts, '\r\n\r\n/'), untilClosed(turret.port, c.parts, '\r\n\r\n/')]);
      assert.ok(fromNode.byServer && fromTurret.byServer, 'every part was sent before the server closed');
      assert.match(fromNode.data, /Keep-Alive: timeout=1\r\n/);
      assert.equal(fromTurret.data, fromNode.data);
    });
  }
});
