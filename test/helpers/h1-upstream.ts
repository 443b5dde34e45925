/**
 * A scripted HTTP/1.1 upstream on 127.0.0.1 for the upstream-exchange tests
 * (test/integration/upstream-h1-*.test.ts): plain TCP and TLS listeners whose every accepted
 * connection is handed to a test's script, which reads requests in order (keep-alive: the second
 * request on a connection is parsed after the first, with the strict parser of http-wire.ts) and
 * writes bytes exactly as it wants — two responses to one request, bytes after a body, a FIN or a
 * RST at any byte, a head dripped a byte at a time. It counts accepted connections per listener
 * and every byte received, and wakes waiters on every event (connection, data, close), so a test
 * waits for what happened, never for time.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { closeServers, FIXTURES } from './upstream.js';
import { parseMessage, type WireMessage } from './http-wire.js';

/** Condition waits woken by events: every connection, byte and close calls changed(). */
export class Wake {
  private readonly waiters = new Set<() => void>();

  readonly changed = (): void => {
    for (const w of [...this.waiters]) w();
  };

  /** Resolves with get()'s first non-null value; rejects when get throws, or after maxMs. */
  until<T>(get: () => T | null, what: () => string, maxMs = 15_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const settle = (err: unknown, v?: T): void => {
        this.waiters.delete(check);
        clearTimeout(timer);
        if (err) reject(err instanceof Error ? err : new Error(String(err)));
        else resolve(v as T);
      };
      const check = (): void => {
        try {
          const v = get();
          if (v !== null) settle(null, v);
        } catch (e) {
          settle(e);
        }
      };
      const timer = setTimeout(() => settle(new Error(`timed out waiting for ${what()}`)), maxMs);
      this.waiters.add(check);
      check();
    });
  }
}

export class H1Conn {
  /** What arrived, in arrival order (joined on demand: a 128 MiB upload is not copied per read). */
  private chunks: Buffer[] = [];
  /** Bytes received on this connection. */
  size = 0;
  /** Complete requests, in order. */
  readonly requests: WireMessage[] = [];
  /** Set when the bytes after the last complete request are not a valid request. */
  problem: string | null = null;
  closed = false;
  /** The connection ended with an error (ECONNRESET from the peer, …). */
  error: string | null = null;
  private parsed = 0;
  /** Parse again only once this many bytes are here (the announced length of the pending request). */
  private need = 0;

  /** Every byte received on this connection. */
  get data(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Body bytes received after the first request head (0 before it). */
  firstBodyBytes(): number {
    const end = this.requests.length > 0 || this.need > 0 ? this.headEnd : this.data.indexOf('\r\n\r\n');
    return end < 0 ? 0 : this.size - end - 4;
  }

  private headEnd = -1;

  constructor(
    readonly id: number,
    readonly tls: boolean,
    readonly socket: net.Socket,
    private readonly wake: Wake,
  ) {
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.size += c.length;
      if (this.size >= this.need) this.parse();
      wake.changed();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.error = e.code ?? e.message;
      socket.destroy();
    });
    socket.on('close', () => {
      this.closed = true;
      wake.changed();
    });
  }

  private parse(): void {
    for (let i = 0; i < 1000 && this.problem === null && this.parsed < this.size; i++) {
      const data = this.data;
      const r = parseMessage(data.subarray(this.parsed), { kind: 'request' });
      if (r.state === 'partial') {
        // A head with a Content-Length: nothing to parse until the whole body is here.
        const end = data.indexOf('\r\n\r\n', this.parsed);
        if (end < 0) return;
        if (this.requests.length === 0) this.headEnd = end;
        const cl = /\r\ncontent-length:[ \t]*(\d+)/i.exec(data.subarray(this.parsed, end).toString('latin1'));
        this.need = cl ? end + 4 + Number(cl[1]) : 0;
        return;
      }
      if (this.requests.length === 0) this.headEnd = data.indexOf('\r\n\r\n');
      this.need = 0;
      if (r.state === 'invalid') {
        this.problem = r.problem;
        return;
      }
      this.requests.push(r.msg);
      this.parsed += r.consumed;
    }
  }

  /** Request heads seen so far (complete requests and one whose body is still arriving). */
  heads(): number {
    const rest = this.data.subarray(this.parsed);
    return this.requests.length + (rest.includes('\r\n\r\n') ? 1 : 0);
  }

  /** Bytes received after the last complete request. */
  unparsed(): Buffer {
    return this.data.subarray(this.parsed);
  }

  /** Resolves with request `i` once it is complete; rejects when the connection closes first. */
  request(i = 0): Promise<WireMessage> {
    return this.when(
      () => this.requests[i] ?? null,
      () => `request ${i} on upstream connection ${this.id}`,
    );
  }

  /** Resolves once the head of request `i` has arrived (its body may still be on its way). */
  async head(i = 0): Promise<void> {
    await this.when(
      () => (this.heads() > i ? true : null),
      () => `the head of request ${i} on upstream connection ${this.id}`,
    );
  }

  /** Resolves once the peer has closed (FIN or RST) or the script destroyed the socket. */
  async gone(): Promise<void> {
    await this.when(
      () => (this.closed ? true : null),
      () => `upstream connection ${this.id} to close`,
      false,
    );
  }

  /** Each part is its own write; resolves once all of them are handed to the kernel. */
  async send(...parts: Array<string | Buffer>): Promise<void> {
    for (const p of parts) {
      await new Promise<void>((resolve) => {
        if (this.socket.destroyed) return resolve();
        this.socket.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p, () => resolve());
      });
    }
  }

  /** FIN after what was written. */
  end(): void {
    this.socket.end();
  }

  /** A TCP RST after what was written is flushed (the peer reads those bytes first). */
  reset(): void {
    if (this.socket.destroyed) return;
    this.socket.write(Buffer.alloc(0), () => this.socket.resetAndDestroy());
  }

  private when<T>(get: () => T | null, what: () => string, failOnClose = true): Promise<T> {
    return this.wake.until(() => {
      const v = get();
      if (v === null && failOnClose && this.closed) {
        throw new Error(`upstream connection ${this.id} closed before ${what()} (received ${JSON.stringify(this.data.toString('latin1').slice(0, 300))})`);
      }
      return v;
    }, what);
  }
}

/** What a test does with each accepted connection (errors are recorded, and the socket destroyed). */
export type H1Script = (c: H1Conn) => void | Promise<void>;

export interface H1Upstream {
  port: number;
  tlsPort: number;
  conns: H1Conn[];
  /** Connections accepted by the plain and by the TLS listener (TLS: before the handshake). */
  accepted: { plain: number; tls: number };
  /** Errors thrown by scripts (a test asserts there are none). */
  errors: string[];
  /** Resolves once `ok()` holds (checked on every connection, byte and close); rejects after maxMs. */
  waitFor(ok: () => boolean, what: string | (() => string), maxMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * `script` runs for every connection that completes its TLS handshake (or every plain one).
 * `beforeTls`, when given, sees each raw TLS connection first and may take it over (return true):
 * a handshake cut by a reset is written there.
 */
export async function startH1Upstream(
  script: H1Script,
  o: {
    beforeTls?: (raw: net.Socket, n: number) => boolean;
    /** Where the TLS listener listens (the transparent listener's upstreams are on port 443). */
    tlsAt?: { host: string; port: number };
  } = {},
): Promise<H1Upstream> {
  const conns: H1Conn[] = [];
  const sockets = new Set<net.Socket>();
  const wake = new Wake();
  const changed = wake.changed;
  const errors: string[] = [];
  const accepted = { plain: 0, tls: 0 };
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.on('close', () => {
      sockets.delete(s);
      changed();
    });
  };
  const run = (socket: net.Socket, isTls: boolean): void => {
    const c = new H1Conn(conns.length, isTls, socket, wake);
    conns.push(c);
    changed();
    Promise.resolve()
      .then(() => script(c))
      .catch((e: Error) => {
        // A connection the peer closed under a waiting script is the test's subject, not an error.
        if (!c.closed) errors.push(`connection ${c.id}: ${e.message}`);
        socket.destroy();
      });
  };
  const key = readFileSync(path.join(FIXTURES, 'upstream.key'));
  const cert = readFileSync(path.join(FIXTURES, 'upstream.crt'));
  const secureContext = tls.createSecureContext({ key, cert });
  const plain = net.createServer((s) => {
    accepted.plain++;
    track(s);
    run(s, false);
  });
  const secure = net.createServer((raw) => {
    const n = accepted.tls++;
    track(raw);
    raw.on('error', () => raw.destroy());
    if (o.beforeTls?.(raw, n)) return changed();
    const s = new tls.TLSSocket(raw, { isServer: true, secureContext, ALPNProtocols: ['http/1.1'] });
    s.on('error', () => s.destroy());
    s.once('secure', () => run(s, true));
    changed();
  });
  const at = [{ host: '127.0.0.1', port: 0 }, o.tlsAt ?? { host: '127.0.0.1', port: 0 }];
  const [port, tlsPort] = await Promise.all(
    [plain, secure].map(
      (srv, i) =>
        new Promise<number>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen(at[i]!.port, at[i]!.host, () => resolve((srv.address() as net.AddressInfo).port));
        }),
    ),
  );
  return {
    port: port as number,
    tlsPort: tlsPort as number,
    conns,
    accepted,
    errors,
    waitFor: (ok, what, maxMs) =>
      wake
        .until(
          () => (ok() ? true : null),
          () => (typeof what === 'string' ? what : what()),
          maxMs,
        )
        .then(() => undefined),
    close: () => closeServers(sockets, plain, secure),
  };
}

/** A response with a Content-Length body (keep-alive unless the extra fields say otherwise). */
export function ok(body: string, extra = ''): string {
  return `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body, 'latin1')}\r\n${extra}\r\n${body}`;
}

/** The path of a request (origin-form target). */
export function pathOf(m: WireMessage): string {
  return m.startLine.split(' ')[1] ?? '';
}

/** The upstreams of one test file: each test starts its own (its own port, so its own origin and pool). */
export function upstreamSet(): { start: typeof startH1Upstream; errors(): string[]; close(): Promise<void> } {
  const all: H1Upstream[] = [];
  return {
    start: async (script, o) => {
      const up = await startH1Upstream(script, o);
      all.push(up);
      return up;
    },
    errors: () => all.flatMap((u) => u.errors),
    close: async () => {
      for (const up of all) await up.close();
    },
  };
}

/** A script that answers every request `own:<path>` on a kept-alive connection. */
export async function echoPaths(c: H1Conn): Promise<void> {
  for (let i = 0; i < 50; i++) await c.send(ok(`own:${pathOf(await c.request(i))}`));
}

/**
 * A script for "the case, then the next request": a request whose path ends in `/case` is answered
 * by `onCase` (which may break the connection), every other one with `own:<path>`.
 */
export function caseOrEcho(onCase: (c: H1Conn) => Promise<void>): H1Script {
  return async (c) => {
    for (let i = 0; i < 50; i++) {
      const p = pathOf(await c.request(i));
      if (p.endsWith('/case')) await onCase(c);
      else await c.send(ok(`own:${p}`));
    }
  };
}
