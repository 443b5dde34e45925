/** Re-reading bytes already taken off a socket, for code that wants to own the socket next. */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/**
 * A Duplex over `socket` that first yields the bytes already read. The TLS and HTTP machinery
 * would otherwise read the socket's handle directly from C++ and lose them (bytes the HTTP parser
 * read past a CONNECT head; a peeked ClientHello or request in transparent mode). The peer's
 * addresses are copied so the pipeline sees who is asking.
 */
export function replayStream(socket: Socket | Duplex, head: Buffer): Duplex {
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  for (const k of ['remoteAddress', 'remotePort', 'remoteFamily', 'localAddress', 'localPort'] as const) {
    Object.defineProperty(d, k, { value: (socket as Socket)[k], enumerable: true });
  }
  // Node's HTTP server calls these when present; timeouts are the guard's and the socket's.
  Object.assign(d, { setTimeout: () => d, setNoDelay: () => d, setKeepAlive: () => d });
  d.push(head);
  socket.on('data', (c: Buffer) => {
    if (!d.push(c)) socket.pause();
  });
  socket.on('end', () => d.push(null));
  socket.on('close', () => d.destroy());
  return d;
}
