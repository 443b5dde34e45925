/** Helpers for the operations tests: the admin listener, raw CONNECT sockets, agent credentials. */
import http from 'node:http';
import net from 'node:net';
import { readResponse } from './raw-proxy.js';
import type { TurretProc } from './turret.js';

/** The admin port from the start-up summary. */
export function adminPort(t: TurretProc): number {
  const m = /"msg":"turret started".*?"admin":"[^"]*:(\d+)"/.exec(t.stderr());
  if (!m) throw new Error(`no admin address in the start-up summary:\n${t.stderr()}`);
  return Number(m[1]);
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function httpGet(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('admin request timed out')));
    req.on('error', reject);
    req.end();
  });
}

export { agentToken } from './turret.js';

export function basic(agent: string, token: string): string {
  return `Basic ${Buffer.from(`${agent}:${token}`).toString('base64')}`;
}

/** Opens a CONNECT tunnel with a raw socket; resolves with the socket and the proxy's answer. */
export async function rawConnect(
  port: number,
  authority: string,
  auth: string | null,
): Promise<{ socket: net.Socket; status: number; headers: Record<string, string>; body: string }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth ? `Proxy-Authorization: ${auth}\r\n` : ''}\r\n`);
  const r = await readResponse(socket, { connect: true });
  return { socket, ...r };
}

/** Resolves when the socket closes, with the bytes it received and how long it took; rejects after `maxMs`. */
export function closedWithin(socket: net.Socket, maxMs: number): Promise<{ ms: number; data: string }> {
  const started = Date.now();
  let data = '';
  socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve({ ms: 0, data });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`socket still open after ${maxMs} ms`));
    }, maxMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ ms: Date.now() - started, data });
    });
  });
}
