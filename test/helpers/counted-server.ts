/** A plain TCP server on 127.0.0.1 that counts the connections it accepted and how many are still open. */
import net from 'node:net';
import { once } from 'node:events';

export interface CountedServer {
  server: net.Server;
  port: number;
  accepted: () => number;
  open: () => number;
}

/** `onSocket` sees each connection after it is counted (its errors are already ignored). */
export async function countedServer(onSocket: (s: net.Socket) => void = () => undefined): Promise<CountedServer> {
  let accepted = 0;
  let open = 0;
  const server = net.createServer((s) => {
    accepted++;
    open++;
    s.on('error', () => undefined);
    s.on('close', () => open--);
    onSocket(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, accepted: () => accepted, open: () => open };
}

/** Calls `onHead` once with the request head `s` sent (up to its blank line, which it includes). */
export function readHead(s: net.Socket, onHead: (head: string) => void): void {
  let head = '';
  const onData = (c: Buffer): void => {
    head += c.toString('latin1');
    if (!head.includes('\r\n\r\n')) return;
    s.off('data', onData);
    onHead(head);
  };
  s.on('data', onData);
}

/** Writes `total` bytes of 'a' to `w` in 1 MiB chunks as fast as its reader takes them, then ends it. */
export function streamBytes(w: { write(c: Buffer): boolean; once(e: 'drain', f: () => void): unknown; end(): unknown }, total: number): void {
  const chunk = Buffer.alloc(1024 * 1024, 'a');
  let sent = 0;
  const more = (): void => {
    while (sent < total) {
      sent += chunk.length;
      if (!w.write(chunk)) return void w.once('drain', more);
    }
    w.end();
  };
  more();
}
