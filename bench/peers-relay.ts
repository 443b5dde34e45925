/**
 * The floor for `npm run bench -- peers`: a minimal TLS-terminating relay in Node, doing only
 * what any intercepting proxy must (accept CONNECT, terminate TLS, parse HTTP, send the request
 * upstream over a pooled verified TLS connection, relay the response) and nothing Turret adds
 * (no identification, decision, injection, scrubbing or audit). Its CPU per request is Node's own
 * TLS and HTTP cost on this machine. It presents the committed test certificate (the client
 * trusts the test CA for it). Plain HTTP in absolute form is relayed too.
 *
 *   node --import tsx bench/peers-relay.ts PORT UPSTREAM_CA_FILE
 */
import http from 'node:http';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import { Pool } from 'undici';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures');
const [port, caFile] = [Number(process.argv[2]), process.argv[3] ?? ''];
const ca = readFileSync(caFile, 'utf8');
const secureContext = tls.createSecureContext({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) });
const pools = new Map<string, Pool>();
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);

function pool(origin: string, servername: string): Pool {
  let p = pools.get(origin);
  if (!p) pools.set(origin, (p = new Pool(origin, { connections: 32, connect: { ca, servername } })));
  return p;
}

async function relay(req: http.IncomingMessage, res: http.ServerResponse, origin: string, servername: string, path: string): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
  try {
    const r = await pool(origin, servername).request({
      method: req.method as 'GET',
      path,
      headers: { ...headers, host: req.headers.host ?? servername },
      body: req.method === 'GET' || req.method === 'HEAD' ? null : req,
    });
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
    res.writeHead(r.statusCode, out);
    r.body.pipe(res);
  } catch {
    res.writeHead(502).end();
  }
}

const targets = new WeakMap<Duplex, { host: string; port: number }>();
const inner = http.createServer((req, res) => {
  const t = targets.get(req.socket);
  if (!t) return void res.writeHead(500).end();
  const name = (req.headers.host ?? t.host).replace(/:\d+$/, '');
  void relay(req, res, `https://127.0.0.1:${t.port}`, name, req.url ?? '/');
});
const outer = http.createServer((req, res) => {
  const u = new URL(req.url ?? '/');
  void relay(req, res, `http://127.0.0.1:${u.port || 80}`, u.hostname, `${u.pathname}${u.search}`);
});
outer.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
  const [host = '', p = '443'] = (req.url ?? '').split(':');
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  if (head.length > 0) socket.unshift(head);
  const t = new tls.TLSSocket(socket, { isServer: true, secureContext });
  targets.set(t, { host, port: Number(p) });
  inner.emit('connection', t);
});
outer.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
