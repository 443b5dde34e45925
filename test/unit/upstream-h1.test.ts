/**
 * Turret's own HTTP/1.1 upstream client (src/proxy/upstream-h1.ts) against a raw upstream on
 * loopback that writes exactly the bytes each case needs: framing, keep-alive reuse, the desync
 * guard, the retry rules, trailers, more than 32 fields, interim responses, timeouts, and the
 * parser's shape check (llhttp.ts). Real sockets, no mocks.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { keepAliveMs, type H1Answer, type H1Request } from '../../src/proxy/upstream-h1.js';
import { OriginPool } from '../../src/proxy/upstream-h1-pool.js';
import { ExchangeEnding } from '../../src/proxy/ending.js';
import { checkParser } from '../../src/proxy/llhttp.js';
import { TurretError, isTurretError } from '../../src/core/errors.js';
import { UpstreamPool } from '../../src/proxy/upstream.js';
import { DEFAULT_LIMITS } from '../../src/proxy/limits.js';
import { createResolver } from '../../src/net/resolver.js';

/** One request as the raw upstream read it. */
interface Seen {
  conn: number;
  head: string;
  body: Buffer;
}

type Responder = (req: Seen, sock: net.Socket) => void;

/** A raw upstream: parses request heads (and Content-Length or chunked bodies) and lets each case answer with bytes. */
class RawUpstream {
  readonly server: net.Server;
  readonly seen: Seen[] = [];
  readonly sockets: net.Socket[] = [];
  respond: Responder = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  private waiters: Array<() => void> = [];

  constructor() {
    this.server = net.createServer((sock) => {
      const conn = this.sockets.push(sock) - 1;
      sock.on('error', () => {});
      let buf = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (let guard = 0; guard < 100; guard++) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.toString('latin1', 0, end);
          let rest = buf.subarray(end + 4);
          let body = Buffer.alloc(0);
          const cl = /\r\ncontent-length: (\d+)/i.exec(head);
          if (cl) {
            const n = Number(cl[1]);
            if (rest.length < n) return;
            body = rest.subarray(0, n);
            rest = rest.subarray(n);
          } else if (/\r\ntransfer-encoding: chunked/i.test(head)) {
            const last = rest.indexOf('0\r\n\r\n');
            if (last < 0) return;
            body = Buffer.from(
              rest
                .subarray(0, last)
                .toString('latin1')
                .replace(/[0-9a-f]+\r\n([^]*?)\r\n/g, '$1'),
              'latin1',
            );
            rest = rest.subarray(last + 5);
          }
          buf = rest;
          const r = { conn, head, body };
          this.seen.push(r);
          this.respond(r, sock);
          for (const w of this.waiters.splice(0)) w();
        }
      });
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  /** Resolves once `n` requests were seen. */
  async requests(n: number): Promise<void> {
    while (this.seen.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }
}

let up: RawUpstream;
let port: number;
let dials = 0;

function pool(max = 4, timeouts = { headersMs: 10_000, bodyMs: 10_000 }, onEmpty: ((p: OriginPool) => void) | null = null): OriginPool {
  return new OriginPool(
    () =>
      new Promise((resolve, reject) => {
        dials++;
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => resolve(s)).once('error', reject);
      }),
    max,
    timeouts,
    onEmpty,
  );
}

/** The upstream closes the connection of the next request unanswered, then answers `retry`; the returned function arms it again. */
function closesOnce(): () => void {
  let first = true;
  up.respond = (_r, s) => {
    if (first) {
      first = false;
      s.destroy();
    } else s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nretry');
  };
  return () => {
    first = true;
  };
}

/** A promise of the next onEmpty call, and the callback to pass. */
function emptied(): { onEmpty: (p: OriginPool) => void; next: () => Promise<void>; count: () => number } {
  let n = 0;
  let waiter: (() => void) | null = null;
  return {
    onEmpty: () => {
      n++;
      waiter?.();
      waiter = null;
    },
    next: () => new Promise<void>((resolve) => (waiter = resolve)),
    count: () => n,
  };
}

function req(o: Partial<H1Request> = {}): H1Request {
  return { method: 'GET', path: '/', headers: [['host', 'up.test']], body: undefined, length: undefined, ...o };
}

function send(p: OriginPool, r: H1Request, ending = new ExchangeEnding()): Promise<H1Answer> {
  return new Promise((resolve, reject) => p.request(r, ending, null, (e, a) => (e || !a ? reject(e) : resolve(a))));
}

async function text(a: H1Answer): Promise<string> {
  if (a.whole !== null) return a.whole.toString('latin1');
  const chunks: Buffer[] = [];
  for await (const c of a.body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('latin1');
}

const code = (c: string) => (e: unknown) => isTurretError(e) && e.code === c;

describe('upstream HTTP/1.1 client (upstream-h1.ts)', () => {
  before(async () => {
    checkParser();
    up = new RawUpstream();
    port = await up.listen();
  });
  after(() => up.close());

  it('the parser shape check passes on this Node', () => {
    assert.doesNotThrow(() => checkParser());
  });

  it('writes head and a buffer body in one request: host first, connection keep-alive, content-length', async () => {
    const p = pool();
    up.respond = (_r, s) => s.write('HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n');
    const a = await send(
      p,
      req({
        method: 'POST',
        path: '/b?x=1',
        headers: [
          ['host', 'up.test'],
          ['X-A', '1'],
        ],
        body: Buffer.from('hello'),
      }),
    );
    assert.equal(a.statusCode, 201);
    const r = up.seen.at(-1) as Seen;
    assert.equal(r.head, 'POST /b?x=1 HTTP/1.1\r\nhost: up.test\r\nconnection: keep-alive\r\nX-A: 1\r\ncontent-length: 5');
    assert.equal(r.body.toString(), 'hello');
    // No body on a POST: content-length 0; on a GET none.
    await send(p, req({ method: 'POST' }));
    assert.match((up.seen.at(-1) as Seen).head, /\r\ncontent-length: 0$/);
    await send(p, req());
    assert.doesNotMatch((up.seen.at(-1) as Seen).head, /content-length/);
    p.close(true);
  });

  it('a streamed body goes chunked without a length, by Content-Length with one', async () => {
    const p = pool();
    up.respond = (r, s) => s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${r.body.length}\r\n\r\n${r.body.toString('latin1')}`);
    const a = await send(p, req({ method: 'PUT', body: Readable.from([Buffer.from('ab'), Buffer.from('cd')]) }));
    assert.equal(await text(a), 'abcd');
    assert.match((up.seen.at(-1) as Seen).head, /transfer-encoding: chunked$/);
    const b = await send(p, req({ method: 'PUT', body: Readable.from([Buffer.from('xyz')]), length: '3' }));
    assert.equal(await text(b), 'xyz');
    assert.match((up.seen.at(-1) as Seen).head, /content-length: 3$/);
    p.close(true);
  });

  it('refuses a field or target that could split the head, writing nothing', async () => {
    const p = pool();
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    const before = up.seen.length;
    for (const r of [
      req({
        headers: [
          ['host', 'up.test'],
          ['x-a', 'v\r\nx-injected: 1'],
        ],
      }),
      req({
        headers: [
          ['host', 'up.test'],
          ['x-a', 'v\nx'],
        ],
      }),
      req({
        headers: [
          ['host', 'up.test'],
          ['x a', 'v'],
        ],
      }),
      req({
        headers: [
          ['host', 'up.test'],
          ['x-a', 'v\0'],
        ],
      }),
      req({ path: '/a b' }),
      req({ path: '/a\r\nx' }),
    ]) {
      await assert.rejects(send(p, r), code('bad_request'));
    }
    // The connection that refused stays good for the next request.
    assert.equal(await text(await send(p, req())), 'ok');
    assert.equal(up.seen.length, before + 1);
    p.close(true);
  });

  it('a small body that arrives with its head is handed over whole; a later one streams', async () => {
    const p = pool();
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello');
    const a = await send(p, req());
    assert.equal(a.whole?.toString(), 'hello');
    assert.deepEqual({ ...(a.trailers ?? { missing: true }) }, {});
    let sock: net.Socket | null = null;
    up.respond = (_r, s) => {
      sock = s;
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhe');
    };
    const b = await send(p, req());
    assert.equal(b.whole, null);
    (sock as unknown as net.Socket).write('llo');
    assert.equal(await text(b), 'hello');
    p.close(true);
  });

  it('keeps a connection alive across requests, and drops it after Connection: close, HTTP/1.0 or a zero keep-alive hint', async () => {
    const p = pool();
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    const d0 = dials;
    await send(p, req());
    await send(p, req());
    await send(p, req());
    assert.equal(dials - d0, 1, 'one connection for three requests');
    for (const answer of [
      'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok',
      'HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\nkeep-alive: timeout=1\r\ncontent-length: 2\r\n\r\nok',
    ]) {
      up.respond = (_r, s) => s.write(answer);
      const d = dials;
      await send(p, req());
      up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      await send(p, req());
      assert.equal(dials - d, 1, `a new connection after ${JSON.stringify(answer.split('\r\n')[1])}`);
    }
    p.close(true);
  });

  it('the keep-alive hint: timeout less a second, at most 60 s, 4 s without one', () => {
    assert.equal(keepAliveMs(undefined), 4_000);
    assert.equal(keepAliveMs('timeout=5, max=100'), 4_000);
    assert.equal(keepAliveMs('max=3, timeout=10'), 9_000);
    assert.equal(keepAliveMs('timeout=3600'), 60_000);
    assert.equal(keepAliveMs('timeout=1'), 0);
    assert.equal(keepAliveMs('max=5'), 4_000);
  });

  it('close-delimited body ends at EOF; HEAD, 204 and 304 have no body', async () => {
    const p = pool();
    up.respond = (_r, s) => {
      s.write('HTTP/1.1 200 OK\r\n\r\nuntil ');
      setImmediate(() => s.end('the end'));
    };
    assert.equal(await text(await send(p, req())), 'until the end');
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n');
    const h = await send(p, req({ method: 'HEAD' }));
    assert.equal(h.headers['content-length'], '100');
    assert.equal(await text(h), '');
    for (const status of ['204 No Content', '304 Not Modified']) {
      up.respond = (_r, s) => s.write(`HTTP/1.1 ${status}\r\n\r\n`);
      const a = await send(p, req());
      assert.equal(await text(a), '');
    }
    p.close(true);
  });

  it('skips interim responses (100, 102, 103); a 101 to a request without upgrade is a protocol error', async () => {
    const p = pool();
    up.respond = (_r, s) =>
      s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </s>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfine');
    const a = await send(p, req());
    assert.equal(a.statusCode, 200);
    assert.equal(a.headers.link, undefined, "the 103's fields are not the answer's");
    assert.equal(await text(a), 'fine');
    up.respond = (_r, s) => s.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
    await assert.rejects(send(p, req()), code('upstream_protocol_error'));
    // A status below 100 is no interim answer (llhttp gives it a body): a protocol error, its
    // body never becomes part of the next message's.
    for (const st of ['000', '099', '042']) {
      up.respond = (_r, s) => s.write(`HTTP/1.1 ${st} X\r\ncontent-length: 5\r\n\r\nEVIL!HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok`);
      await assert.rejects(send(p, req()), code('upstream_protocol_error'), st);
    }
    p.close(true);
  });

  it('more than 32 fields (flushed early by the binding) and repeated fields arrive whole', async () => {
    const p = pool();
    let h = 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n';
    for (let i = 0; i < 40; i++) h += `x-f${i}: v${i}\r\n`;
    h += 'set-cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n';
    up.respond = (_r, s) => {
      // In pieces, so that the flush crosses reads too.
      s.write(h.slice(0, 300));
      setImmediate(() => s.write(h.slice(300)));
    };
    const a = await send(p, req());
    for (let i = 0; i < 40; i++) assert.equal(a.headers[`x-f${i}`], `v${i}`);
    assert.deepEqual(a.headers['set-cookie'], ['a=1', 'b=2']);
    p.close(true);
  });

  it('chunked body with trailers: the trailers are there when the body ended', async () => {
    const p = pool();
    let sock: net.Socket | null = null;
    up.respond = (_r, s) => {
      sock = s;
      s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n3\r\nabc\r\n');
    };
    const a = await send(p, req());
    assert.equal(a.trailers, null, 'not before the end');
    (sock as unknown as net.Socket).write('2\r\nde\r\n0\r\nx-sum: 5\r\nx-other: 1\r\n\r\n');
    assert.equal(await text(a), 'abcde');
    assert.deepEqual({ ...(a.trailers ?? {}) }, { 'x-sum': '5', 'x-other': '1' });
    // A Content-Length after the body is a protocol error.
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ncontent-length: 99\r\n\r\n');
    await assert.rejects(send(p, req()).then(text), code('upstream_protocol_error'));
    p.close(true);
  });

  it('framing errors: CL with TE, two different lengths, a bad chunk are protocol errors; a short body at EOF is upstream_closed', async () => {
    const p = pool();
    for (const bad of [
      'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
      'HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nbad header\r\n\r\n',
    ]) {
      up.respond = (_r, s) => s.write(bad);
      await assert.rejects(send(p, req()).then(text), (e: unknown) => isTurretError(e) && e.code === 'upstream_protocol_error', JSON.stringify(bad));
    }
    up.respond = (_r, s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort');
    const a = await send(p, req());
    await assert.rejects(text(a), code('upstream_closed'));
    up.respond = (_r, s) => s.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab');
    await assert.rejects(send(p, req()).then(text), code('upstream_closed'));
    up.respond = (_r, s) => s.end('HTTP/1.1 200 OK\r\ncontent-');
    await assert.rejects(send(p, req()), code('upstream_closed'));
    p.close(true);
  });

  it('a head larger than 64 KiB is a protocol error', async () => {
    const p = pool();
    up.respond = (_r, s) => s.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70 * 1024)}\r\ncontent-length: 0\r\n\r\n`);
    await assert.rejects(send(p, req()), code('upstream_protocol_error'));
    p.close(true);
  });

  it('desync guard: bytes after a complete response never answer the next request', async () => {
    const p = pool(1);
    // A 204 followed by a whole second response in the same write.
    up.respond = (_r, s) => s.write('HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled');
    const a = await send(p, req());
    assert.equal(a.statusCode, 204);
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nreal');
    const d = dials;
    const b = await send(p, req());
    assert.equal(await text(b), 'real');
    assert.equal(dials - d, 1, 'the connection that carried extra bytes was not reused');
    p.close(true);
  });

  it('desync guard: an idle connection that receives a byte is dropped', async () => {
    const p = pool(1);
    let sock: net.Socket | null = null;
    up.respond = (_r, s) => {
      sock = s;
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    };
    await send(p, req());
    const closed = once(sock as unknown as net.Socket, 'close');
    (sock as unknown as net.Socket).write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstale');
    await closed;
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfresh');
    const d = dials;
    assert.equal(await text(await send(p, req())), 'fresh');
    assert.equal(dials - d, 1);
    p.close(true);
  });

  it('retry: a GET on a reused connection closed before any response byte goes once more on a new connection; a POST does not', async () => {
    const p = pool(1);
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    await send(p, req());
    // The next request on that connection: the upstream closes without answering (as one that
    // timed the idle connection out would), then answers on the new connection.
    const again = closesOnce();
    const seen = up.seen.length;
    assert.equal(await text(await send(p, req())), 'retry');
    assert.equal(up.seen.length - seen, 2, 'sent twice');
    // A PUT with a buffer body is idempotent and re-sendable too.
    again();
    assert.equal(await text(await send(p, req({ method: 'PUT', body: Buffer.from('x') }))), 'retry');
    // Not idempotent: upstream_closed, sent once.
    again();
    const before = up.seen.length;
    await assert.rejects(send(p, req({ method: 'POST', body: Buffer.from('x') })), code('upstream_closed'));
    assert.equal(up.seen.length - before, 1);
    // Idempotent but a streamed body: cannot be sent again.
    await send(p, req());
    again();
    await assert.rejects(send(p, req({ method: 'PUT', body: Readable.from([Buffer.from('x')]), length: '1' })), code('upstream_closed'));
    // Only once: the retry's own connection closing fails the request.
    await send(p, req());
    up.respond = (_r, s) => s.destroy();
    await assert.rejects(send(p, req()), code('upstream_closed'));
    // A fresh connection that closes is not retried either.
    await assert.rejects(send(p, req()), code('upstream_closed'));
    p.close(true);
  });

  it('headers timeout and body timeout are upstream_timeout', async () => {
    const p = pool(2, { headersMs: 100, bodyMs: 100 });
    up.respond = () => {};
    await assert.rejects(send(p, req()), code('upstream_timeout'));
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
    const a = await send(p, req());
    await assert.rejects(text(a), code('upstream_timeout'));
    p.close(true);
  });

  it('a request whose exchange ends while queued settles at once and is never sent; the ending cuts one in flight', async () => {
    const p = pool(1);
    up.respond = () => {};
    const held = send(p, req({ path: '/held' }));
    held.catch(() => {});
    await up.requests(up.seen.length + 1);
    const ending = new ExchangeEnding();
    const queued = send(p, req({ path: '/queued' }), ending);
    ending.end(new TurretError('client_closed'));
    await assert.rejects(queued, code('client_closed'));
    p.close(true);
    await assert.rejects(held, code('upstream_closed'));
    assert.ok(!up.seen.some((r) => r.head.startsWith('GET /queued')));
  });

  it('a forced close fails the waiting requests without opening a connection for them', async () => {
    const p = pool(1);
    up.respond = () => {};
    const held = send(p, req({ path: '/held' }));
    await up.requests(up.seen.length + 1);
    const waiting = send(p, req({ path: '/waiting' }));
    const d = dials;
    p.close(true);
    assert.equal(dials, d, 'no connect for requests that are failed anyway');
    await assert.rejects(held, code('upstream_closed'));
    await assert.rejects(waiting, code('upstream_connect_failed'));
    assert.equal(p.busyOrIdle, false);
  });

  it('a body whose last read paused the connection (its reader behind) leaves the connection readable for the next response', async () => {
    const p = pool(1);
    let sock: net.Socket | null = null;
    up.respond = (_r, s) => {
      sock = s;
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 65536\r\n\r\n');
    };
    const a = await send(p, req());
    assert.equal(a.whole, null);
    // The whole body arrives while nobody reads: its buffer reaches the high-water mark with the
    // read that completes the response.
    (sock as unknown as net.Socket).write(Buffer.alloc(65536, 120));
    for (let i = 0; i < 100_000 && a.body.readableLength < 65536; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(a.body.readableLength, 65536);
    assert.equal((await text(a)).length, 65536);
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext');
    const d = dials;
    assert.equal(await text(await send(p, req())), 'next');
    assert.equal(dials, d, 'on the same connection');
    p.close(true);
  });

  it('a slow reader pauses the connection: a large body is not read ahead of it', async () => {
    const p = pool(1);
    const total = 8 * 1024 * 1024;
    let sock: net.Socket | null = null;
    up.respond = (_r, s) => {
      sock = s;
      s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${total}\r\n\r\n`);
      const chunk = Buffer.alloc(64 * 1024, 97);
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
      };
      pump();
    };
    const a = await send(p, req());
    // Nothing reads for a while: the upstream must find its writes backed up.
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if ((sock as unknown as net.Socket).writableLength > 0) resolve();
        else setImmediate(check);
      };
      check();
    });
    assert.ok(a.body.readableLength <= 1024 * 1024, `buffered ${a.body.readableLength}`);
    let n = 0;
    for await (const c of a.body) n += (c as Buffer).length;
    assert.equal(n, total);
    // The connection the slow reader paused serves the next request (it is read again).
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext');
    const d = dials;
    assert.equal(await text(await send(p, req())), 'next');
    assert.equal(dials, d, 'on the same connection');
    p.close(true);
  });
  it('a pool that holds nothing tells its owner once: after its last idle connection closed, a failed connect, an ended wait', async () => {
    const e = emptied();
    const p = pool(2, undefined, e.onEmpty);
    let sock: net.Socket | null = null;
    up.respond = (_r, s) => {
      sock = s;
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    };
    assert.equal(await text(await send(p, req())), 'ok');
    // The connection idles: the pool still holds it.
    assert.equal(e.count(), 0);
    assert.equal(p.busyOrIdle, true);
    const gone = e.next();
    (sock as unknown as net.Socket).destroy();
    await gone;
    assert.equal(e.count(), 1);
    assert.equal(p.busyOrIdle, false);
    assert.equal(p.closed, true);

    // A connect that fails with nobody else waiting.
    const e2 = emptied();
    const refused = new OriginPool(() => Promise.reject(new TurretError('upstream_connect_failed', 'refused')), 2, { headersMs: 1000, bodyMs: 1000 }, e2.onEmpty);
    await assert.rejects(send(refused, req()), code('upstream_connect_failed'));
    assert.equal(e2.count(), 1);

    // A request whose exchange ends while its connect is under way: the pool empties when the
    // connect settles (the socket it brings is closed, not kept).
    const e3 = emptied();
    let release: (s: net.Socket) => void = () => {};
    const dialled = new Promise<net.Socket>((resolve) => (release = resolve));
    const slow = new OriginPool(() => dialled, 2, { headersMs: 1000, bodyMs: 1000 }, e3.onEmpty);
    const ending = new ExchangeEnding();
    const r = send(slow, req(), ending);
    ending.end(new TurretError('client_closed'));
    await assert.rejects(r, code('client_closed'));
    assert.equal(e3.count(), 0, 'its connect is still under way');
    const done = e3.next();
    const s3 = net.connect(port, '127.0.0.1');
    await once(s3, 'connect');
    release(s3);
    await done;
    assert.equal(e3.count(), 1);
    assert.equal(s3.destroyed, true);
  });

  it('UpstreamPool drops an origin pool that holds nothing; the next request gets a fresh one', async () => {
    const u = new UpstreamPool({
      resolver: createResolver({ lookup: async () => [{ address: '127.0.0.1', family: 4 }] }),
      ca: [],
      selfAddresses: new Set(),
      limits: DEFAULT_LIMITS,
      metrics: null,
    });
    const loop = [{ cidrs: ['127.0.0.1/32'], unsafe: true }];
    const origin = `http://pool.test:${port}`;
    // Refused (loopback without an exception): the pool empties as the connect fails.
    for (let i = 0; i < 20; i++) {
      const p = u.pool([], `agent${i}`, `http://n${i}.test:${port}`, 'http', `n${i}.test`, port);
      await assert.rejects(send(p, req()), code('dest_address_forbidden'));
    }
    assert.equal(u.originPools, 0);
    // Served, then its idle connection closes: gone from the map; a later request gets a new pool.
    let sock: net.Socket | null = null;
    up.respond = (_r, s) => {
      sock = s;
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    };
    const p1 = u.pool(loop, 'a', origin, 'http', 'pool.test', port);
    assert.equal(await text(await send(p1, req())), 'ok');
    assert.equal(u.originPools, 1);
    assert.equal(u.pool(loop, 'a', origin, 'http', 'pool.test', port), p1, 'the same pool while it holds a connection');
    const closed = once(sock as unknown as net.Socket, 'close');
    (sock as unknown as net.Socket).destroy();
    await closed;
    for (let i = 0; i < 1000 && p1.busyOrIdle; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(p1.busyOrIdle, false);
    assert.equal(u.originPools, 0);
    const p2 = u.pool(loop, 'a', origin, 'http', 'pool.test', port);
    assert.notEqual(p2, p1);
    assert.equal(p2.closed, false);
    assert.equal(await text(await send(p2, req())), 'ok');
    await u.close(true);
    // After close, a pool made for a request still running serves it and keeps nothing.
    const p3 = u.pool(loop, 'a', origin, 'http', 'pool.test', port);
    assert.equal(await text(await send(p3, req())), 'ok');
    for (let i = 0; i < 1000 && p3.busyOrIdle; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(p3.busyOrIdle, false);
  });
  it('close during a retry dial: graceful still serves the retried request, forced fails it', { timeout: 20_000 }, async () => {
    for (const force of [false, true]) {
      let n = 0;
      let dialled: () => void = () => {};
      const secondDial = new Promise<void>((resolve) => (dialled = resolve));
      let release: () => void = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      const connect = (): Promise<net.Socket> =>
        new Promise((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1');
          s.once('connect', () => resolve(s)).once('error', reject);
        });
      const p = new OriginPool(
        () => {
          if (++n === 1) return connect();
          dialled();
          return held.then(connect);
        },
        1,
        { headersMs: 10_000, bodyMs: 10_000 },
      );
      up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      await send(p, req());
      closesOnce();
      const r = send(p, req());
      r.catch(() => {});
      await secondDial;
      p.close(force);
      release();
      if (force) await assert.rejects(r, code('upstream_connect_failed'));
      else assert.equal(await text(await r), 'retry');
      // Nothing is kept either way: the new connection closes with the pool.
      for (let i = 0; i < 1000 && p.busyOrIdle; i++) await new Promise<void>((resolve) => setImmediate(resolve));
      assert.equal(p.busyOrIdle, false);
    }
  });
  it('a forced close aborts a connect under way (a TLS handshake the upstream never answers) instead of waiting for its timeout', { timeout: 20_000 }, async () => {
    const u = new UpstreamPool({
      resolver: createResolver({ lookup: async () => [{ address: '127.0.0.1', family: 4 }] }),
      ca: [],
      selfAddresses: new Set(),
      limits: { ...DEFAULT_LIMITS, connectTimeoutMs: 600_000 },
      metrics: null,
    });
    const p = u.pool([{ cidrs: ['127.0.0.1/32'], unsafe: true }], 'a', `https://hang.test:${port}`, 'https', 'hang.test', port);
    const before = up.sockets.length;
    const r = send(p, req());
    r.catch(() => {});
    for (let i = 0; i < 100_000 && up.sockets.length === before; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    const closed = once(up.sockets[before] as net.Socket, 'close');
    await u.close(true);
    await assert.rejects(r, code('upstream_connect_failed'));
    await closed;
    for (let i = 0; i < 1000 && p.busyOrIdle; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(p.busyOrIdle, false);
  });
  it('the framing fields are its own: a Content-Length, Transfer-Encoding, Connection or second Host from the caller is not sent', async () => {
    const p = pool(1);
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    const headers: Array<[string, string]> = [
      ['Host', 'up.test'],
      ['Content-Length', '5'],
      ['Transfer-Encoding', 'chunked'],
      ['Connection', 'close'],
      ['HOST', 'other.test'],
      ['x-kept', '1'],
    ];
    await send(p, req({ method: 'POST', headers, body: Buffer.from('hello') }));
    const r = up.seen.at(-1) as Seen;
    assert.equal(r.head, 'POST / HTTP/1.1\r\nhost: up.test\r\nconnection: keep-alive\r\nx-kept: 1\r\ncontent-length: 5');
    assert.equal(r.body.toString(), 'hello');
    p.close(true);
  });
  it('retry: a connection handed straight from one response to a waiting request counts as reused', async () => {
    const p = pool(1);
    let n = 0;
    let answerFirst: () => void = () => {};
    up.respond = (_r, s) => {
      n++;
      // The first request is answered once the second waits; the second, on the same connection,
      // finds it closed unanswered; its retry on a new connection is answered.
      if (n === 1) answerFirst = () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst');
      else if (n === 2) s.destroy();
      else s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nretry');
    };
    const seen = up.seen.length;
    const first = send(p, req({ path: '/first' }));
    await up.requests(seen + 1);
    const second = send(p, req({ path: '/second' }));
    answerFirst();
    assert.equal(await text(await first), 'first');
    assert.equal(await text(await second), 'retry');
    assert.equal(up.seen.length - seen, 3);
    p.close(true);
  });
  // The parser reads the socket's stream in C++ (consume): the cases that would catch a mistake
  // in what it does per read, on pause and resume, at EOF, after a response, and on close.

  it('a response split at every byte: head, chunked body, trailers, then the same connection again', async () => {
    const p = pool(1);
    const answer = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: 1\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nx-sum: 5\r\n\r\n';
    up.respond = (_r, s) => {
      s.setNoDelay(true);
      let i = 0;
      // One byte a write, the next after the event loop turned: most arrive as reads of their own.
      const next = (): void => {
        if (s.destroyed || i >= answer.length) return;
        s.write(answer[i++] as string, 'latin1');
        setImmediate(next);
      };
      next();
    };
    const d = dials;
    for (let round = 0; round < 3; round++) {
      const a = await send(p, req());
      assert.equal(a.statusCode, 200);
      assert.equal(a.headers['x-a'], '1');
      assert.equal(await text(a), 'abcde');
      assert.deepEqual({ ...(a.trailers ?? {}) }, { 'x-sum': '5' });
    }
    assert.equal(dials - d, 1, 'one connection for the three');
    p.close(true);
  });

  it('bytes after a streamed body, in the read that ends it: the body is exactly its length and the connection is not reused', async () => {
    const p = pool(1);
    let sock: net.Socket | null = null;
    up.respond = (_r, s) => {
      sock = s;
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
    };
    const a = await send(p, req());
    assert.equal(a.whole, null);
    (sock as unknown as net.Socket).write('defghijHTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled');
    assert.equal(await text(a), 'abcdefghij');
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nreal');
    const d = dials;
    assert.equal(await text(await send(p, req())), 'real');
    assert.equal(dials - d, 1, 'the connection that carried extra bytes was not reused');
    p.close(true);
  });

  it('an upstream that closes right after each response: every answer arrives whole, the next request gets a new connection', async () => {
    const p = pool(1);
    up.respond = (_r, s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    for (let i = 0; i < 5; i++) assert.equal(await text(await send(p, req())), 'ok');
    // With the last chunk of a streamed body and the FIN in one go.
    let sock: net.Socket | null = null;
    up.respond = (_r, s) => {
      sock = s;
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nabc');
    };
    const a = await send(p, req());
    (sock as unknown as net.Socket).end('def');
    assert.equal(await text(a), 'abcdef');
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext');
    assert.equal(await text(await send(p, req())), 'next');
    p.close(true);
  });

  it('a reset mid-body while the reader is behind: what was read stays whole, then the body fails upstream_closed', async () => {
    const p = pool(1);
    const total = 64 * 1024 * 1024;
    let sock: net.Socket | null = null;
    let backedUp: () => void = () => {};
    const full = new Promise<void>((resolve) => (backedUp = resolve));
    up.respond = (_r, s) => {
      sock = s;
      s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${total}\r\n\r\n`);
      const chunk = Buffer.alloc(64 * 1024, 98);
      // Until its writes back up (nothing reads, so the connection stopped reading): then no more.
      for (let sent = 0; sent < total; sent += chunk.length) if (!s.write(chunk)) break;
      backedUp();
    };
    const a = await send(p, req());
    await full;
    (sock as unknown as net.Socket).resetAndDestroy();
    let n = 0;
    await assert.rejects(
      (async () => {
        for await (const c of a.body) {
          assert.ok((c as Buffer).every((b) => b === 98));
          n += (c as Buffer).length;
        }
      })(),
      code('upstream_closed'),
    );
    assert.ok(n < total, `read ${n}`);
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext');
    assert.equal(await text(await send(p, req())), 'next');
    p.close(true);
  });

  it('a reader that destroys the body inside a read (the parser still on that read) closes the connection; the next request is served', async () => {
    const p = pool(1);
    let sock: net.Socket | null = null;
    up.respond = (_r, s) => {
      sock = s;
      s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
    };
    const a = await send(p, req());
    const closed = once(sock as unknown as net.Socket, 'close');
    const body = a.body;
    body.on('error', () => {});
    body.on('data', () => body.destroy());
    // Several chunks and another response in one write: the first chunk's 'data' destroys the body.
    (sock as unknown as net.Socket).write('1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nbad');
    await closed;
    up.respond = (_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext');
    const d = dials;
    assert.equal(await text(await send(p, req())), 'next');
    assert.equal(dials - d, 1);
    p.close(true);
  });

  it('timers re-armed on a reused connection: the headers timeout of a later request, the idle close of a parked connection', async () => {
    const p = pool(1, { headersMs: 100, bodyMs: 10_000 });
    let sock: net.Socket | null = null;
    up.respond = (_r, s) => {
      sock = s;
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    };
    const d = dials;
    assert.equal(await text(await send(p, req())), 'ok');
    assert.equal(await text(await send(p, req())), 'ok');
    // The third request on the same connection gets no answer: its (refreshed) headers timer fires.
    up.respond = () => {};
    await assert.rejects(send(p, req()), code('upstream_timeout'));
    assert.equal(dials - d, 1);
    // Parked twice with a hint of 2 s (idle 1 s): the refreshed idle timer closes it.
    up.respond = (_r, s) => {
      sock = s;
      s.write('HTTP/1.1 200 OK\r\nkeep-alive: timeout=2\r\ncontent-length: 2\r\n\r\nok');
    };
    await send(p, req());
    await send(p, req());
    await once(sock as unknown as net.Socket, 'close');
    assert.equal(p.busyOrIdle, false);
    p.close(true);
  });
});
