/**
 * Transparent mode (`turret start --transparent HOST:PORT`): a second listener for connections
 * that nftables redirected to Turret (REDIRECT/DNAT of tcp 80 and 443 from a container network,
 * deploy/nftables/turret-transparent.nft). The client believes it talks to the origin.
 *
 * Node cannot read SO_ORIGINAL_DST, so the destination is what the client says, never the
 * address it dialled:
 * - TLS (first byte 0x16): the ClientHello's SNI is the host, the port is 443. It is read without
 *   consuming it (tls/client-hello.ts); no SNI, an IP literal as SNI, or a malformed hello closes
 *   the connection. Then it is exactly a CONNECT to host:443: decide the tunnel, intercept with
 *   a leaf for the host, and every request inside runs the full pipeline on the inner server
 *   (Host must match the SNI, 421 otherwise). A refused tunnel still completes TLS with the
 *   host's leaf, so the agent reads a 403 with its code instead of a reset.
 * - Anything else is plain HTTP from port 80 (transparent-plain.ts): each origin-form request is
 *   rewritten to the absolute form a proxy client would have sent (`http://Host:80/path`) and
 *   runs the pipeline.
 *
 * The agent is known by its source address only (agents' `sources:`): a Proxy-Authorization
 * header is removed, never honoured. Guarded connects are unchanged: Turret resolves the name
 * itself, so the address the client dialled never chooses the upstream address.
 */
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TurretError } from '../../core/errors.js';
import { normaliseHost } from '../../net/host.js';
import { sourceTableFor } from '../../net/sources.js';
import { looksLikeTls, MAX_CLIENT_HELLO, parseClientHello } from '../../tls/client-hello.js';
import { clientOf, recordRefusal } from '../record.js';
import type { Runtime } from '../runtime.js';
import { sendError } from '../stages/respond.js';
import { replayStream } from './replay.js';
import { guardAccepts } from './accept.js';
import { bindAgent } from '../bound.js';
import { servePlain } from './transparent-plain.js';
import type { Connections } from './connection.js';
import { openTunnel, terminateTls, type Intercepted } from './tunnel.js';

export interface TransparentListener {
  address(): AddressInfo;
  /** Stop accepting and end idle plain-HTTP keep-alive connections; the drain handles the rest. */
  close(): void;
}

export interface TransparentOptions {
  listen: { host: string; port: number };
  /** Takes decrypted tunnels (to the proxy's inner server). */
  intercepted: Intercepted;
  /** A never-listening server with the proxy's options, for redirected plain HTTP. */
  plain: http.Server;
  /** The proxy's per-connection state (the plain server's requests are tracked there). */
  conns: Connections;
  /** The proxy's socket set, so the drain waits for (and at its deadline cuts) these too. */
  sockets: Set<Socket>;
}

const HTTPS_PORT = 443;

/** What the transparent listener and the run bridge (bridge.ts) share: one way to take a connection. */
export interface TransparentHandler {
  /**
   * Take a connection whose first bytes are a TLS ClientHello or a plain HTTP request. `agent`
   * is the agent the connection was authenticated as (the run bridge), or null to look the
   * source address up in the agents' `sources:` ranges.
   */
  accept(s: Socket | Duplex, agent: string | null): void;
  /** Draining: end idle plain-HTTP keep-alive connections now and as each turns idle. */
  stop(): void;
}

export function transparentHandler(rt: Runtime, o: Omit<TransparentOptions, 'listen'>): TransparentHandler {
  const plainGuard = servePlain(rt, o.plain, o.conns);
  const refusals = refusalServer(rt);
  let sweep: NodeJS.Timeout | null = null;
  return {
    accept: (s, agent) => onConnection(rt, o, refusals, s, agent),
    stop: () => {
      if (sweep) return;
      // Prepended, before the pipeline answers a refusal synchronously (drain.ts).
      o.plain.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
        res.shouldKeepAlive = false;
      });
      // A request that ends turns its connection idle: sweep until the drain has cut the rest.
      sweep = setInterval(() => plainGuard.closeIdle(), 50);
      sweep.unref();
      plainGuard.closeIdle();
    },
  };
}

export async function startTransparent(
  rt: Runtime,
  o: TransparentOptions,
  handler: TransparentHandler = transparentHandler(rt, o),
  cap: number | null = null,
): Promise<TransparentListener> {
  const listener = net.createServer({ pauseOnConnect: false }, (s) => {
    o.sockets.add(s);
    s.once('close', () => o.sockets.delete(s));
    handler.accept(s, null);
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(o.listen.port, o.listen.host, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  rt.selfAddresses.add((listener.address() as AddressInfo).address);
  guardAccepts(rt, listener, 'transparent', cap);
  return {
    address: () => listener.address() as AddressInfo,
    close: () => {
      listener.close();
      handler.stop();
    },
  };
}

/** Read the first bytes without consuming them, then hand the connection to TLS or plain HTTP. */
function onConnection(rt: Runtime, o: Omit<TransparentOptions, 'listen'>, refusals: RefusalServer, s: Socket | Duplex, agent: string | null): void {
  s.on('error', () => s.destroy());
  o.conns.closeWhenIdle(rt, s as Socket);
  const timer = setTimeout(() => s.destroy(), rt.limits.clientHeadersTimeoutMs);
  timer.unref();
  let buf: Buffer = Buffer.alloc(0);
  let atLeast = 1;
  // Read now: a closed socket no longer knows its peer.
  const client = clientOf(s as Socket);
  const stop = (): void => {
    s.off('data', onData);
    s.off('close', onClose);
    s.pause();
    clearTimeout(timer);
  };
  // Gone in the middle of its ClientHello: no host is known, but the attempt leaves a record.
  // (A connection that closes without sending a byte is a probe, not an attempt.)
  const onClose = (): void => {
    clearTimeout(timer);
    if (buf.length > 0 && looksLikeTls(buf[0]))
      closeRefused(rt, s, client, new TurretError('client_tls_failed', `the client closed the connection in the middle of its TLS ClientHello (${buf.length} bytes)`));
  };
  s.once('close', onClose);
  const onData = (c: Buffer): void => {
    buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
    if (buf.length < atLeast) return;
    if (!looksLikeTls(buf[0])) {
      stop();
      o.plain.emit('connection', bindAgent(replayStream(s, buf), agent));
      return;
    }
    const r = parseClientHello(buf);
    switch (r.kind) {
      case 'need_more':
        atLeast = r.atLeast;
        if (atLeast > MAX_CLIENT_HELLO * 2) {
          stop();
          closeRefused(rt, s, client, new TurretError('bad_target', 'the TLS ClientHello is too large'));
        }
        return;
      case 'invalid':
        stop();
        closeRefused(rt, s, client, new TurretError('bad_target', `not a valid TLS ClientHello (${r.reason})`));
        return;
      case 'hello':
        stop();
        void openRedirectedTunnel(rt, o.intercepted, refusals, s, buf, r.sni, agent);
        return;
      default: {
        const never: never = r;
        return never;
      }
    }
  };
  s.on('data', onData);
}

/** Nothing to answer in (no host to present a certificate for): record and close. */
function closeRefused(rt: Runtime, s: Socket | Duplex, client: string, err: TurretError): void {
  recordRefusal(rt, err, { event: 'tunnel_open', agent: null, client, scheme: 'https', port: HTTPS_PORT });
  s.destroy();
}

/**
 * A redirected TLS connection is a tunnel to its SNI host, port 443, for the agent its source
 * address names — or, from the run bridge, the agent it was authenticated as (`bound`).
 */
function openRedirectedTunnel(
  rt: Runtime,
  intercepted: Intercepted,
  refusals: RefusalServer,
  s: Socket | Duplex,
  head: Buffer,
  sni: string | null,
  bound: string | null,
): Promise<void> {
  const state = rt.state;
  return openTunnel(rt, intercepted, {
    socket: s,
    head,
    client: clientOf(s as Socket),
    target: () => {
      if (sni === null) throw new TurretError('bad_target', 'a redirected TLS connection must name its host in SNI; dialling an address directly is not supported');
      const t = normaliseHost(sni);
      // RFC 6066 §3: SNI never carries an address. One that does names no host we could vouch for.
      if (t.kind !== 'name') throw new TurretError('bad_target', 'TLS SNI must be a host name, not an address');
      return { host: t.host, port: HTTPS_PORT, kind: t.kind };
    },
    identify: () => {
      if (bound !== null) return bound;
      const agent = sourceTableFor(state.policy.agents).lookup((s as Socket).remoteAddress)?.agent;
      if (!agent)
        throw new TurretError(
          'proxy_auth_required',
          `source address ${(s as Socket).remoteAddress ?? '?'} belongs to no agent (transparent mode identifies agents by their sources: ranges)`,
        );
      return agent;
    },
    passthrough: false,
    reasonPrefix: 'transparent: ',
    // OpenSSL reads the same ClientHello again; should it ever see another name than our parser did,
    // every request in the tunnel is refused (421) rather than trusting either reading.
    sniAgainst: 'the SNI first read',
    refuse: (err, t, scrub) => {
      // No valid host name: nothing to present a certificate for.
      if (!t) return void s.destroy();
      // Answer inside TLS with the host's leaf: the agent (and the model behind it) reads why.
      void terminateTls(rt, s, head, t.host, null, (tlsSocket) => {
        refusals.refuse(tlsSocket, { err, host: t.host, scrub });
      });
    },
  });
}

interface Refusal {
  err: TurretError;
  host: string;
  scrub: (s: string) => string;
}

/** Answers inside TLS: `refuse` hands it a refused tunnel's decrypted connection. */
interface RefusalServer {
  refuse(tlsSocket: Duplex, r: Refusal): void;
}

/** A never-listening server that answers every request of a refused tunnel with its error. */
function refusalServer(rt: Runtime): RefusalServer {
  // The refusal of each connection it was handed (owned by this listener).
  const refused = new WeakMap<object, Refusal>();
  const server = http.createServer({ maxHeaderSize: rt.limits.maxHeaderBytes });
  server.on('connection', (socket: Duplex) => {
    // One answer, then the connection closes; a client that sends nothing is cut.
    const t = setTimeout(() => socket.destroy(), rt.limits.clientHeadersTimeoutMs);
    t.unref();
    socket.once('close', () => clearTimeout(t));
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const r = refused.get(req.socket);
    if (!r) return void req.socket.destroy();
    res.shouldKeepAlive = false;
    sendError(res, r.err, { method: req.method ?? null, target: `https://${r.host}`, scrub: r.scrub });
  });
  const drop = (_req: http.IncomingMessage, socket: Duplex): void => void socket.destroy();
  server.on('connect', drop);
  server.on('upgrade', drop);
  server.on('clientError', (_e: Error, socket: Duplex) => socket.destroy());
  return {
    refuse: (tlsSocket, r) => {
      refused.set(tlsSocket, r);
      server.emit('connection', tlsSocket);
    },
  };
}
