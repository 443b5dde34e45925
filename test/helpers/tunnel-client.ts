/**
 * One keep-alive HTTPS client through a CONNECT tunnel of a test's turret (Node has no proxy
 * agent): at most one tunnel at a time, TLS inside it with turret's CA, and a count of the
 * tunnels opened, so a test can show that its requests shared one intercepted connection.
 */
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';

export interface TunnelAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface TunnelClient {
  /** A GET, with these request headers besides the agent's own. */
  get(path: string, headers?: http.OutgoingHttpHeaders): Promise<TunnelAnswer>;
  /** Tunnels opened so far. */
  tunnels(): number;
  close(): void;
}

export function keepAliveTunnel(o: { proxyPort: number; auth: string; host: string; port: number; ca: Buffer }): TunnelClient {
  let tunnels = 0;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  (agent as unknown as { createConnection: unknown }).createConnection = (_o: unknown, cb: (e: Error | null, s?: Duplex) => void) => {
    tunnels++;
    const c = http.request({ host: '127.0.0.1', port: o.proxyPort, method: 'CONNECT', path: `${o.host}:${o.port}`, headers: { 'proxy-authorization': o.auth } });
    c.on('connect', (res, socket) => (res.statusCode === 200 ? cb(null, tls.connect({ socket, servername: o.host, ca: o.ca })) : cb(new Error(`CONNECT ${res.statusCode}`))));
    c.on('error', (e) => cb(e));
    c.end();
    return undefined;
  };
  const get = (p: string, headers?: http.OutgoingHttpHeaders): Promise<TunnelAnswer> =>
    new Promise((resolve, reject) => {
      const req = https.request({ host: o.host, port: o.port, path: p, agent, headers }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
  return { get, tunnels: () => tunnels, close: () => agent.destroy() };
}
