/**
 * Turret's Node preload, loaded into the agent's Node programs by `turret env` / `turret run`
 * through `NODE_OPTIONS=--import=<turret>/dist/client/preload.js`. It makes programs that do
 * not read the proxy variables go through Turret unmodified:
 *
 * - global `fetch` and undici's own request/fetch without a dispatcher: undici's
 *   EnvHttpProxyAgent becomes the global dispatcher (Node's built-in fetch and any undici copy
 *   share that global);
 * - `node:http` / `node:https` requests that use the default agent (got, node-fetch, the plain
 *   modules): `http.globalAgent` sends absolute-form requests to the proxy, `https.globalAgent`
 *   opens a CONNECT tunnel through it.
 *
 * Proxy settings are read per request from HTTPS_PROXY/HTTP_PROXY/NO_PROXY (either case), so a
 * program that changes them later is honoured; a host in NO_PROXY, or the proxy itself (axios
 * talks to the proxy on its own), goes direct. Not covered: requests with their own agent
 * (`agent: false`, a custom Agent, `ws` without an agent — it passes createConnection), raw
 * net/tls sockets. This file runs in the agent's processes, not in Turret: it imports only node:
 * modules and Turret's own undici (resolved from this file, so the Turret installation must be
 * readable by the agent's user). A failure to install is not silent: it stops the program with a
 * message saying what failed and how to run without the preload.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';

interface Proxy {
  url: URL;
  auth: string | null;
}

function envOf(...names: string[]): string | undefined {
  for (const n of names) {
    const v = process.env[n];
    if (v) return v;
  }
  return undefined;
}

/** NO_PROXY semantics of curl and undici: "*", exact hosts, domain suffixes (".x" or "x"), optional :port. */
function bypassed(host: string, port: number): boolean {
  const list = envOf('no_proxy', 'NO_PROXY');
  if (!list) return false;
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  for (const raw of list.split(/[\s,]+/)) {
    if (!raw) continue;
    if (raw === '*') return true;
    const m = /^(.*?)(?::(\d+))?$/.exec(raw.replace(/^\[(.*)\]/, '$1')) ?? [];
    const name = (m[1] ?? '').replace(/^\*?\./, '').toLowerCase();
    if (m[2] && Number(m[2]) !== port) continue;
    if (h === name || h.endsWith(`.${name}`)) return true;
  }
  return false;
}

function proxyFor(secure: boolean, host: string, port: number): Proxy | null {
  const raw = secure ? envOf('https_proxy', 'HTTPS_PROXY') : envOf('http_proxy', 'HTTP_PROXY');
  if (!raw || bypassed(host, port)) return null;
  const url = new URL(raw.includes('://') ? raw : `http://${raw}`);
  const proxyPort = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  // The proxy itself goes direct: a client that speaks to the proxy on its own (axios) must not loop.
  if (url.hostname.replace(/^\[|\]$/g, '') === host.replace(/^\[|\]$/g, '') && proxyPort === port) return null;
  const auth = url.username || url.password ? `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}` : null;
  return { url, auth };
}

function connectToProxy(p: Proxy): Duplex {
  const port = Number(p.url.port || (p.url.protocol === 'https:' ? 443 : 80));
  const host = p.url.hostname.replace(/^\[|\]$/g, '');
  return p.url.protocol === 'https:' ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host }) : net.connect({ host, port });
}

type Callback = (err: Error | null, socket?: Duplex) => void;
type ConnOptions = tls.ConnectionOptions & { host?: string; port?: number | string; servername?: string };

/** https: a CONNECT tunnel through the proxy, then TLS to the target inside it. */
class TunnelingAgent extends https.Agent {
  override createConnection(options: ConnOptions, cb: Callback): Duplex | undefined {
    const host = options.host ?? 'localhost';
    const port = Number(options.port ?? 443);
    const p = proxyFor(true, host, port);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- https.Agent.createConnection is untyped in @types/node
    if (!p) return (https.Agent.prototype as any).createConnection.call(this, options, cb) as Duplex;
    const authority = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
    const sock = connectToProxy(p);
    let buf = Buffer.alloc(0);
    const fail = (e: Error): void => {
      sock.destroy();
      cb(e);
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 65536) fail(new Error(`turret preload: proxy answer to CONNECT ${authority} has no end of headers`));
        return;
      }
      sock.off('data', onData);
      sock.off('error', fail);
      const head = buf.subarray(0, end).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1];
      if (status !== '200') {
        const code = /\r\nx-turret-error:\s*([^\r\n]*)/i.exec(head)?.[1];
        return fail(new Error(`turret preload: proxy refused CONNECT ${authority}: ${head.split('\r\n')[0]}${code ? ` (${code})` : ''}`));
      }
      const rest = buf.subarray(end + 4);
      if (rest.length > 0) sock.unshift(rest);
      const servername = options.servername ?? (net.isIP(host) ? undefined : host);
      const secure = tls.connect({ ...options, host: undefined, port: undefined, socket: sock, servername });
      cb(null, secure);
    };
    sock.on('data', onData);
    sock.on('error', fail);
    sock.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${p.auth ? `Proxy-Authorization: ${p.auth}\r\n` : ''}\r\n`);
    return undefined;
  }
}

type Req = http.ClientRequest & { _header?: string | null; path: string };

/** http: the request goes to the proxy in absolute form with the proxy credential. */
class ForwardingAgent extends http.Agent {
  addRequest(req: Req, options: http.RequestOptions): void {
    const host = options.host ?? options.hostname ?? 'localhost';
    const port = Number(options.port ?? 80);
    const p = proxyFor(false, host, port);
    if (p) {
      const authority = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
      const target = req.path.includes('://') ? req.path : `http://${authority}${req.path}`;
      if (typeof req._header === 'string' && req._header) {
        // Headers already rendered (array headers or Expect): rewrite the request line in place.
        req._header = req._header.replace(/^(\S+) \S+/, `$1 ${target}`);
        if (p.auth) req._header = req._header.replace(/\r\n\r\n$/, `\r\nProxy-Authorization: ${p.auth}\r\n\r\n`);
      } else {
        req.path = target;
        if (p.auth) req.setHeader('Proxy-Authorization', p.auth);
      }
      (options as Record<string, unknown>).turretProxy = p;
    }
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- addRequest is not in @types/node
    (http.Agent.prototype as any).addRequest.call(this, req, options);
  }

  override createConnection(options: ConnOptions & { turretProxy?: Proxy }, cb: Callback): Duplex | undefined {
    if (options.turretProxy) return connectToProxy(options.turretProxy);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- createConnection is untyped here
    return (http.Agent.prototype as any).createConnection.call(this, options, cb) as Duplex;
  }
}

async function install(): Promise<void> {
  // Imported here, not at the top, so a missing or broken undici is reported below.
  const { EnvHttpProxyAgent, setGlobalDispatcher } = await import('undici');
  setGlobalDispatcher(new EnvHttpProxyAgent());
  // Same options as Node's own global agents (keep-alive since Node 19).
  http.globalAgent = new ForwardingAgent({ keepAlive: true });
  https.globalAgent = new TunnelingAgent({ keepAlive: true });
}

try {
  await install();
} catch (e) {
  const why = e instanceof Error ? e.message : String(e);
  process.stderr.write(
    `turret preload (${new URL(import.meta.url).pathname}): could not route fetch and http(s) through Turret's proxy: ${why}\n` +
      "Check that Turret's installation is readable by this user, or run without the preload by removing its --import from NODE_OPTIONS.\n",
  );
  process.exit(70);
}
