/**
 * A raw TCP (and TLS) upstream on 127.0.0.1 that records every byte it receives, per connection,
 * and speaks just enough HTTP/1.1 to answer: it parses the first request on a connection with the
 * strict parser (http-wire.ts), answers it — by default `200`, `Connection: close` — and closes.
 * One request per connection means "bytes after the first message" can only be smuggled bytes,
 * and a request can be attributed to the test case that sent it by its `X-Case` field.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { closeServers, FIXTURES } from './upstream.js';
import { header, parseMessage, type WireMessage } from './http-wire.js';

export interface UpstreamConn {
  id: number;
  tls: boolean;
  /** Every byte received on this connection. */
  data: Buffer;
  /** The first request, once complete and valid. */
  request: WireMessage | null;
  /** Why the bytes are not one valid request (set when invalid). */
  problem: string | null;
  /** Bytes received after the first complete request (must stay empty). */
  extra: Buffer;
  /** `X-Case` of the request (or of its head, when the message never completed). */
  caseId: string | null;
  closed: boolean;
}

/**
 * A scripted answer: `parts` are written one by one (each its own write, so the peer may see them
 * in separate reads), then the connection ends with a FIN (`end`) or a TCP RST (`reset`).
 */
export interface RawAnswer {
  parts: Buffer[];
  close: 'end' | 'reset';
}

/** What to answer a complete request with; the default is a small 200 with Connection: close. */
export type Responder = (req: WireMessage, caseId: string | null) => Buffer | RawAnswer;

export const OK_CLOSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok', 'latin1');

export interface RawUpstream {
  port: number;
  tlsPort: number;
  conns: UpstreamConn[];
  /** Resolves once no connection has been open or active for `quietMs`. */
  settled(quietMs?: number, maxMs?: number): Promise<void>;
  close(): Promise<void>;
}

function caseOfHead(data: Buffer): string | null {
  const end = data.indexOf('\r\n\r\n');
  const head = data.subarray(0, end < 0 ? Math.min(data.length, 64 * 1024) : end).toString('latin1');
  return /\r\nx-case:[ \t]*([^\r\n]*)/i.exec(head)?.[1]?.trim() ?? null;
}

export async function startRawUpstream(respond: Responder = () => OK_CLOSE): Promise<RawUpstream> {
  const conns: UpstreamConn[] = [];
  const sockets = new Set<net.Socket>();
  let lastActivity = Date.now();
  const onSocket = (socket: net.Socket, isTls: boolean): void => {
    const c: UpstreamConn = { id: conns.length, tls: isTls, data: Buffer.alloc(0), request: null, problem: null, extra: Buffer.alloc(0), caseId: null, closed: false };
    conns.push(c);
    sockets.add(socket);
    lastActivity = Date.now();
    let consumed = -1;
    socket.on('data', (chunk: Buffer) => {
      lastActivity = Date.now();
      c.data = Buffer.concat([c.data, chunk]);
      c.caseId ??= caseOfHead(c.data);
      if (consumed >= 0) {
        c.extra = c.data.subarray(consumed);
        return;
      }
      if (c.problem) return;
      const r = parseMessage(c.data, { kind: 'request' });
      if (r.state === 'partial') return;
      if (r.state === 'invalid') {
        c.problem = r.problem;
        socket.destroy();
        return;
      }
      consumed = r.consumed;
      c.request = r.msg;
      c.caseId = header(r.msg, 'x-case')[0] ?? c.caseId;
      c.extra = c.data.subarray(consumed);
      const answer = respond(r.msg, c.caseId);
      if (Buffer.isBuffer(answer)) socket.end(answer);
      else {
        for (const p of answer.parts) socket.write(p);
        // The reset after the written bytes are flushed, so the peer reads them first.
        if (answer.close === 'reset') socket.write(Buffer.alloc(0), () => socket.resetAndDestroy());
        else socket.end();
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      c.closed = true;
      sockets.delete(socket);
      lastActivity = Date.now();
    });
  };
  const plain = net.createServer((s) => onSocket(s, false));
  const secure = tls.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, (s) => onSocket(s, true));
  // A failed TLS handshake never reaches onSocket; nothing was received as HTTP then.
  secure.on('tlsClientError', () => {});
  const listen = (srv: net.Server): Promise<number> => new Promise((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as net.AddressInfo).port)));
  const [port, tlsPort] = await Promise.all([listen(plain), listen(secure)]);
  return {
    port,
    tlsPort,
    conns,
    async settled(quietMs = 150, maxMs = 5_000) {
      const end = Date.now() + maxMs;
      while (Date.now() < end && (sockets.size > 0 || Date.now() - lastActivity < quietMs)) await new Promise((r) => setTimeout(r, 25));
    },
    close: () => closeServers(sockets, plain, secure),
  };
}
