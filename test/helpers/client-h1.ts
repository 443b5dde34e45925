/**
 * The client side of intercepted tunnels, byte for byte (test/integration/client-h1-*.test.ts): a
 * raw TLS client inside CONNECT that writes exactly the bytes a test gives it and keeps every
 * byte Turret answers, with waits woken by its events (data, end, close), never by time; a
 * splitter that reads those bytes as a sequence of responses to a known list of requests (HEAD
 * answers carry no body) with the strict parser of http-wire.ts; and an upstream script that
 * answers by path: a Content-Length body, a chunked one, one delimited by the close, 204, 304,
 * an echo of the request body, a slow answer released by the test.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseMessage, type WireMessage } from './http-wire.js';
import { HOST, type H1Proxy } from './h1-proxy.js';
import { until } from './turret.js';
import { ok, pathOf, type H1Conn, type H1Script } from './h1-upstream.js';

export { HOST };

/** A decrypted connection inside an intercepted tunnel, as a raw client sees it. */
export interface RawTunnel {
  s: tls.TLSSocket;
  /** The client address Turret records for this connection (`client` in the audit). */
  client: string;
  /** Every byte received so far. */
  got(): Buffer;
  /** The client saw the server's FIN (TLS close or TCP end). */
  ended(): boolean;
  closed(): boolean;
  /** Resolves once `ok(received)` holds; rejects when the connection closes first or after maxMs. */
  until(ok: (got: Buffer) => boolean, what: string, maxMs?: number): Promise<void>;
  /** Resolves with everything received once the connection has closed (bounded). */
  done(maxMs?: number): Promise<Buffer>;
  write(data: string | Buffer): void;
}

/** CONNECT to `HOST:port` on Turret's proxy port, then TLS with Turret's CA; `allowHalfOpen` keeps our side writable after Turret's FIN. */
export async function openTunnel(px: H1Proxy, port: number, o: { allowHalfOpen?: boolean } = {}): Promise<RawTunnel> {
  const raw = net.connect(px.t.port, '127.0.0.1');
  raw.on('error', () => undefined);
  let head = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      raw.off('data', onData).off('close', fail);
      resolve();
    };
    const fail = (): void => reject(new Error(`CONNECT closed: ${head}`));
    raw.on('data', onData).once('close', fail);
    raw.write(`CONNECT ${HOST}:${port} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nProxy-Authorization: ${px.auth}\r\n\r\n`);
  });
  assert.match(head, /^HTTP\/1\.1 200 /, 'CONNECT answered 200');
  return overTls(raw, px.t.caDir, o);
}

/** A TLS connection to Turret's transparent listener on `port` with SNI `HOST` (a redirected connection to HOST:443). */
export async function openTransparent(caDir: string, port: number, o: { allowHalfOpen?: boolean } = {}): Promise<RawTunnel> {
  const raw = net.connect(port, '127.0.0.1');
  raw.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  return overTls(raw, caDir, o);
}

/** TLS with Turret's CA over `raw`, and the recording client on top of it. */
async function overTls(raw: net.Socket, caDir: string, o: { allowHalfOpen?: boolean }): Promise<RawTunnel> {
  const ca = readFileSync(path.join(caDir, 'ca.crt'));
  // tls.connect passes allowHalfOpen to its TLSSocket (Node's _tls_wrap.js); the type does not list it.
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = { socket: raw, servername: HOST, ca, allowHalfOpen: o.allowHalfOpen ?? false };
  const s = tls.connect(options);
  const chunks: Buffer[] = [];
  let size = 0;
  let ended = false;
  let closed = false;
  const waiters = new Set<() => void>();
  const changed = (): void => {
    for (const w of [...waiters]) w();
  };
  const got = (): Buffer => {
    if (chunks.length > 1) chunks.splice(0, chunks.length, Buffer.concat(chunks));
    return chunks[0] ?? Buffer.alloc(0);
  };
  s.on('error', () => undefined);
  s.on('data', (c: Buffer) => {
    chunks.push(c);
    size += c.length;
    changed();
  });
  s.on('end', () => {
    ended = true;
    changed();
  });
  s.on('close', () => {
    closed = true;
    raw.destroy();
    changed();
  });
  await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('close', () => reject(new Error('tunnel TLS failed'))));
  const wait = (check: () => boolean, fails: () => string | null, what: string, maxMs: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => settle(new Error(`timed out after ${maxMs} ms waiting for ${what}; got ${JSON.stringify(got().toString('latin1').slice(-400))}`)), maxMs);
      const settle = (e: Error | null): void => {
        waiters.delete(w);
        clearTimeout(timer);
        if (e) reject(e);
        else resolve();
      };
      const w = (): void => {
        if (check()) return settle(null);
        const f = fails();
        if (f) settle(new Error(f));
      };
      waiters.add(w);
      w();
    });
  return {
    s,
    client: `127.0.0.1:${raw.localPort ?? 0}`,
    got,
    ended: () => ended,
    closed: () => closed,
    until: (ok, what, maxMs = 15_000) =>
      wait(
        () => ok(got()),
        () => (closed ? `the connection closed before ${what}; got ${JSON.stringify(got().toString('latin1').slice(-400))} (${size} bytes)` : null),
        what,
        maxMs,
      ),
    done: async (maxMs = 20_000) => {
      await wait(
        () => closed,
        () => null,
        'Turret to close the connection',
        maxMs,
      );
      return got();
    },
    write: (data) => void s.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data),
  };
}

/** A request inside the tunnel (origin-form unless `target` says otherwise); `body` gets a Content-Length unless `headers` frames it. */
export function request(port: number, method: string, p: string, o: { headers?: string; body?: string | Buffer; version?: string; host?: string | null } = {}): Buffer {
  const host = o.host === undefined ? `Host: ${HOST}:${port}\r\n` : o.host === null ? '' : `Host: ${o.host}\r\n`;
  const framed = /transfer-encoding|content-length/i.test(o.headers ?? '');
  const len = o.body === undefined || framed ? '' : `Content-Length: ${Buffer.byteLength(o.body)}\r\n`;
  const head = `${method} ${p} HTTP/${o.version ?? '1.1'}\r\n${host}${o.headers ?? ''}${len}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), o.body === undefined ? Buffer.alloc(0) : Buffer.from(o.body)]);
}

export interface Responses {
  responses: WireMessage[];
  /** Bytes after the last complete response. */
  rest: Buffer;
  problem: string | null;
}

/**
 * Reads `buf` as the answers to requests with `methods`, in order (interim 1xx answers do not
 * use up a request); `closed` completes a close-delimited body.
 */
export function responsesTo(buf: Buffer, methods: string[], closed: boolean): Responses {
  const responses: WireMessage[] = [];
  let i = 0;
  let answered = 0;
  for (let n = 0; n < 1000 && i < buf.length; n++) {
    const r = parseMessage(buf.subarray(i), { kind: 'response', method: methods[answered] ?? 'GET', closed });
    if (r.state === 'invalid') return { responses, rest: buf.subarray(i), problem: r.problem };
    if (r.state === 'partial') break;
    responses.push(r.msg);
    i += r.consumed;
    if (r.msg.status >= 200) answered++;
    if (r.msg.status === 101) break;
  }
  return { responses, rest: buf.subarray(i), problem: null };
}

/** Resolves once `t` holds `n` complete final responses to `methods`; returns them. */
export async function awaitResponses(t: RawTunnel, methods: string[], n = methods.length): Promise<WireMessage[]> {
  let out: WireMessage[] = [];
  await t.until((b) => {
    const r = responsesTo(b, methods, false);
    assert.equal(r.problem, null, `not a response: ${r.problem}: ${JSON.stringify(b.toString('latin1').slice(0, 600))}`);
    out = r.responses.filter((m) => m.status >= 200);
    return out.length >= n;
  }, `${n} responses`);
  return out;
}

/** The names of a message's header fields, lower-cased, in order. */
export function fieldNames(m: WireMessage): string[] {
  return m.headers.map(([k]) => k.toLowerCase());
}

/** A response head's lines with the Date value replaced by `<date>`, for exact comparison. */
export function headLines(m: WireMessage): string[] {
  return [m.startLine, ...m.headers.map(([k, v]) => (k.toLowerCase() === 'date' ? `${k}: <date>` : `${k}: ${v}`))];
}

/** Releases for the `/slow/` answers of `byPath`: a test calls `release(path)` when it wants that answer sent. */
export class Gates {
  private readonly waiting = new Map<string, () => void>();
  private readonly opened = new Set<string>();

  wait(p: string): Promise<void> {
    if (this.opened.has(p)) return Promise.resolve();
    return new Promise((resolve) => this.waiting.set(p, resolve));
  }

  release(p: string): void {
    this.opened.add(p);
    this.waiting.get(p)?.();
  }

  /** Whether the upstream holds `p` (its request arrived and waits for release). */
  holds(p: string): boolean {
    return this.waiting.has(p);
  }
}

/**
 * An upstream script answering by the path's first segment, keep-alive unless the answer is
 * close-delimited: `/cl/` `own:<path>` with a length; `/chunked/` the same in two chunks;
 * `/close/` the same without length, then FIN; `/204/`, `/304/`; `/echo/` `METHOD <path> <body>`
 * with a length; `/slow/` like `/cl/` once `gates.release(path)`; anything else like `/cl/`.
 * A HEAD is answered with the head of the GET answer (its Content-Length, no body).
 */
export function byPath(gates: Gates = new Gates(), seen: WireMessage[] = []): H1Script {
  return async (c: H1Conn) => {
    for (let i = 0; i < 200; i++) {
      const m = await c.request(i);
      seen.push(m);
      const p = pathOf(m);
      const method = m.startLine.split(' ')[0] ?? '';
      const kind = p.split('/')[1] ?? '';
      const body = kind === 'echo' ? `${method} ${p} ${m.body.toString('latin1')}` : `own:${p}`;
      if (kind === 'slow') await gates.wait(p);
      if (kind === '204') await c.send('HTTP/1.1 204 No Content\r\nX-Kind: 204\r\n\r\n');
      else if (kind === '304') await c.send('HTTP/1.1 304 Not Modified\r\nETag: "e1"\r\n\r\n');
      else if (method === 'HEAD') await c.send(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`);
      else if (kind === 'chunked') {
        const half = Math.floor(body.length / 2);
        await c.send(
          `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n${half.toString(16)}\r\n${body.slice(0, half)}\r\n`,
          `${(body.length - half).toString(16)}\r\n${body.slice(half)}\r\n0\r\n\r\n`,
        );
      } else if (kind === 'close') {
        await c.send(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n${body}`);
        c.end();
        return;
      } else await c.send(ok(body));
    }
  };
}

/** Waits for the record of each path and checks each has exactly one; returns them in `paths` order. */
export async function oneEach(px: H1Proxy, paths: string[]): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  for (const p of paths) {
    out.push(await px.record(p));
    assert.equal(px.records(p).length, 1, `exactly one record for ${p}: ${JSON.stringify(px.records(p))}`);
  }
  return out;
}

/** The request records written for the client connection of `t`, once there are `n` (then exactly `n`). */
export async function recordsOf(px: H1Proxy, t: RawTunnel, n = 1): Promise<Array<Record<string, unknown>>> {
  const now = (): Array<Record<string, unknown>> => px.t.audit().filter((r) => r.event === 'request' && r.client === t.client);
  await until(
    () => now().length >= n,
    () => `${n} request records of ${t.client}: ${JSON.stringify(now())}`,
  );
  assert.equal(now().length, n, JSON.stringify(now()));
  return now();
}

/** The request records of the tunnel `tunnelId` that carry an error code, once there are `n` (then exactly `n`). */
export async function refusalsIn(px: H1Proxy, tunnelId: unknown, n = 1): Promise<Array<Record<string, unknown>>> {
  const now = (): Array<Record<string, unknown>> => px.t.audit().filter((r) => r.event === 'request' && r.tunnel_id === tunnelId && r.code !== undefined);
  await until(
    () => now().length >= n,
    () => `${n} refusal records in tunnel ${String(tunnelId)}: ${JSON.stringify(now())}`,
  );
  assert.equal(now().length, n, JSON.stringify(now()));
  return now();
}

/** The fields of a refusal Turret writes raw to the socket (respond.ts sendErrorRaw), in order: no Date. */
export const RAW_REFUSAL_FIELDS = ['content-type', 'content-length', 'x-turret-error', 'cache-control', 'connection'];

/**
 * Everything `t` received until Turret closed it is one raw refusal: `startLine`, the raw fields,
 * X-Turret-Error `code` and a body whose reason line matches `reason`; nothing after it.
 */
export async function expectRawRefusal(t: RawTunnel, startLine: string, code: string, reason: RegExp): Promise<WireMessage> {
  const raw = await t.done();
  const r = responsesTo(raw, ['GET'], true);
  assert.equal(r.problem, null, raw.toString('latin1'));
  assert.equal(r.rest.length, 0, 'nothing after the refusal');
  assert.equal(r.responses.length, 1, raw.toString('latin1'));
  const m = r.responses[0]!;
  assert.equal(m.startLine, startLine);
  assert.deepEqual(
    m.headers.map(([k]) => k.toLowerCase()),
    RAW_REFUSAL_FIELDS,
  );
  assert.deepEqual(
    m.headers.filter(([k]) => /^(x-turret-error|connection)$/i.test(k)).map(([, v]) => v),
    [code, 'close'],
  );
  assert.match(m.body.toString(), reason);
  return m;
}
