/**
 * Sends raw bytes to the proxy (or into an intercepted tunnel) and collects everything that comes
 * back, bounded in time: the exchange ends when the proxy closes, when a final response that keeps
 * the connection open has been followed by `quietMs` of silence, or at `hardMs`.
 */
import net from 'node:net';
import tls from 'node:tls';
import { header, parseResponses } from './http-wire.js';

export interface Replayed {
  data: Buffer;
  /** The proxy closed (or reset) the connection. */
  closed: boolean;
  /** Nothing decided the exchange before hardMs. */
  timedOut: boolean;
  ms: number;
}

export function collect(sock: net.Socket | tls.TLSSocket, bytes: Buffer, o: { method?: string; quietMs?: number; hardMs?: number } = {}): Promise<Replayed> {
  const started = Date.now();
  const quietMs = o.quietMs ?? 300;
  return new Promise((resolve) => {
    let data = Buffer.alloc(0);
    let quiet: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (closed: boolean, timedOut: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(hard);
      clearTimeout(quiet);
      sock.destroy();
      resolve({ data, closed, timedOut, ms: Date.now() - started });
    };
    const hard = setTimeout(() => finish(false, true), o.hardMs ?? 3_000);
    sock.on('data', (c: Buffer) => {
      data = Buffer.concat([data, c]);
      clearTimeout(quiet);
      const r = parseResponses(data, { method: o.method, closed: false });
      const last = r.responses.at(-1);
      if (r.problem || !last || last.status < 200 || r.rest.length > 0) return;
      if (header(last, 'connection').some((v) => /\bclose\b/i.test(v))) return; // the close will come
      quiet = setTimeout(() => finish(false, false), quietMs);
    });
    sock.on('error', () => finish(true, false));
    sock.on('close', () => finish(true, false));
    sock.write(bytes);
  });
}

export async function replayPlain(port: number, bytes: Buffer, o: { method?: string; quietMs?: number; hardMs?: number } = {}): Promise<Replayed> {
  const sock = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  return collect(sock, bytes, o);
}

/** CONNECT authority, TLS with Turret's CA, then the case bytes inside the tunnel. */
export async function replayInTunnel(
  port: number,
  authority: string,
  auth: string,
  ca: Buffer,
  bytes: Buffer,
  o: { method?: string; quietMs?: number; hardMs?: number } = {},
): Promise<Replayed> {
  const raw = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  raw.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
  const head = await new Promise<string>((resolve, reject) => {
    let s = '';
    const on = (c: Buffer): void => {
      s += c.toString('latin1');
      if (s.includes('\r\n\r\n')) {
        raw.off('data', on);
        resolve(s);
      }
    };
    raw.on('data', on).once('error', reject);
  });
  if (!head.startsWith('HTTP/1.1 200')) throw new Error(`CONNECT refused: ${head.slice(0, 80)}`);
  const servername = authority.replace(/:\d+$/, '');
  const s = tls.connect({ socket: raw, servername, ca });
  await new Promise<void>((resolve, reject) => s.once('secureConnect', () => resolve()).once('error', reject));
  return collect(s, bytes, o);
}

/** Run `fn` over `items` with at most `n` in flight. */
export async function pool<T, R>(items: readonly T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i] as T);
      }
    }),
  );
  return out;
}
