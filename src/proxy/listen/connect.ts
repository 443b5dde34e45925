/**
 * CONNECT: identify → target → decide (may this agent reach host:port at all?) → intercept.
 * The tunnel is TLS-terminated with a leaf for the CONNECT host minted by the local CA, and the
 * decrypted connection is handed to the inner HTTP server, where every request runs the full
 * pipeline again. A client that does not start TLS fails the handshake and is closed: Turret
 * never relays bytes it cannot inspect (docs/security.md).
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { replayStream } from './replay.js';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { TurretError, asTurretError } from '../../core/errors.js';
import { parseAuthority, normaliseHost } from '../../net/host.js';
import { decideTunnel } from '../../policy/decide.js';
import { newId, type Tunnel } from '../stages/exchange.js';
import { checkLookalike, checkTunnelTarget } from '../stages/guards.js';
import { identifyAgent } from '../stages/identify.js';
import { holdTunnelSlot } from '../limits.js';
import { sendErrorRaw } from '../stages/respond.js';
import type { Runtime } from '../runtime.js';

export const tunnels = new WeakMap<object, Tunnel>();

export async function handleConnect(rt: Runtime, inner: Server, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  const started = process.hrtime.bigint();
  const state = rt.state;
  const client = `${(socket as Socket).remoteAddress ?? '?'}:${(socket as Socket).remotePort ?? 0}`;
  let agent: string | null = null;
  let host: string | undefined;
  let port: number | undefined;
  socket.on('error', () => socket.destroy());
  const audit = (outcome: 'allowed' | 'denied' | 'failed' | 'completed', event: 'tunnel_open' | 'tunnel_close', extra: Record<string, unknown> = {}): void => {
    rt.audit.write({ time: new Date().toISOString(), event, outcome, agent, method: 'CONNECT', scheme: 'https', host, port, client, ...extra });
  };
  try {
    checkConnectRequest(req);
    agent = identifyAgent(req.headers, state.policy, rt.ring, rt.values, (socket as Socket).remoteAddress);
    const t = parseAuthority(req.url ?? '', 443);
    host = t.host;
    port = t.port;
    checkLookalike(state.policy, agent, t.host);
    const d = decideTunnel(state.policy, agent, t.host, t.port);
    if (!d.allow) throw new TurretError(d.code ?? 'policy_denied', d.reason, { rule: d.rule?.id });
    holdTunnelSlot(rt, agent, socket); // 429 too_many_tunnels; given back when the socket closes
    // Node hands CONNECT sockets over non-flowing, so bytes sent early wait in the buffer meanwhile.
    await checkTunnelTarget(rt, state, agent, t);
    const tunnel: Tunnel = { id: newId(), agent, host: t.host, port: t.port, sni: null, mismatch: null, client };
    // Passthrough: dial before answering 200, so a refused or dead upstream is a readable error.
    const opaque = d.passthrough ? await state.upstream.connectRaw(t.host, t.port, false, d.rule?.addressExceptions ?? []) : null;
    const bytes = { in: 0, out: 0 };
    audit('allowed', 'tunnel_open', { rule: d.rule?.id ?? null, tunnel_id: tunnel.id, reason: d.reason });
    rt.metrics?.openTunnels.inc();
    rt.metrics?.tunnels.inc({ mode: opaque ? 'passthrough' : 'intercept' });
    socket.once('close', () => {
      rt.metrics?.openTunnels.dec();
      const extra = opaque ? { bytes_in: bytes.in, bytes_out: bytes.out, reason: 'opaque tunnel closed' } : {};
      audit('completed', 'tunnel_close', { tunnel_id: tunnel.id, duration_ms: Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10, ...extra });
    });
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (opaque) relayOpaque(socket, head, opaque, bytes);
    else intercept(rt, inner, socket, head, tunnel);
  } catch (e) {
    const err = asTurretError(e);
    if (err.code === 'internal_error') rt.log.error('CONNECT failed', { error: String((e as Error)?.stack ?? e) });
    audit(err.status < 500 ? 'denied' : 'failed', 'tunnel_open', { code: err.code, status: err.status, reason: err.reason, rule: err.rule ?? null });
    rt.metrics?.requests.inc({ agent: agent ?? 'unknown', decision: err.status < 500 ? 'denied' : 'failed', code: err.code });
    sendErrorRaw(socket, err, { method: 'CONNECT', target: host ? `${host}:${port}` : null, scrub: (s) => state.scrubbers.get().scrubString(s).text });
  }
}

/**
 * An opaque tunnel (a passthrough rule): bytes both ways, counted, nothing parsed. Whatever
 * closes or fails on one side closes the other.
 */
function relayOpaque(client: Duplex, head: Buffer, upstream: Socket, bytes: { in: number; out: number }): void {
  const close = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
  client.on('data', (c: Buffer) => (bytes.in += c.length));
  upstream.on('data', (c: Buffer) => (bytes.out += c.length));
  if (head.length > 0) {
    bytes.in += head.length;
    upstream.write(head);
  }
  client.pipe(upstream);
  upstream.pipe(client);
}

/**
 * The CONNECT request itself, before anything else (Node does no validation of it at all):
 * the target must be authority-form `host:port` with an explicit port of 1–5 digits (RFC 9110
 * §9.3.6) — no default port, no userinfo, scheme or path (net/host.ts refuses those too) — and the
 * request has no content: a Content-Length or Transfer-Encoding on a CONNECT would make what
 * follows the head ambiguous (body, or the start of the tunnel?), so it is refused.
 */
export function checkConnectRequest(req: IncomingMessage): void {
  const url = req.url ?? '';
  if (!/^(\[[0-9A-Fa-f:.]+\]|[^\s:@/?#[\]]+):[0-9]{1,5}$/.test(url)) {
    throw new TurretError('bad_target', 'a CONNECT target must be host:port with an explicit port');
  }
  const cl = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')) {
    throw new TurretError('bad_request', 'a CONNECT request has no content (Content-Length / Transfer-Encoding)');
  }
}

function intercept(rt: Runtime, inner: Server, socket: Duplex, head: Buffer, tunnel: Tunnel): void {
  socket.pause();
  rt.leaves.contextFor(tunnel.host).then(
    (context) => {
      // TLSSocket reads a net.Socket's handle directly from C++, so bytes the HTTP parser already
      // read past the CONNECT head would be lost; only then do we go through a JS stream.
      const transport = head.length > 0 ? replayStream(socket, head) : socket;
      const tlsSocket = new tls.TLSSocket(transport as Socket, {
        isServer: true,
        secureContext: context,
        ALPNProtocols: ['http/1.1'],
        SNICallback: (servername, cb) => {
          let sni: string;
          try {
            sni = normaliseHost(servername).host;
          } catch {
            sni = servername.slice(0, 100);
          }
          tunnel.sni = sni;
          if (sni !== tunnel.host) tunnel.mismatch = `TLS SNI ${sni} does not match the CONNECT host ${tunnel.host}`;
          cb(null, context);
        },
      });
      tunnels.set(tlsSocket, tunnel);
      // A client that does not speak TLS fails the handshake here: nothing is ever relayed raw.
      tlsSocket.on('error', (err: Error & { code?: string }) => {
        rt.log.debug('tunnel TLS error', { tunnel_id: tunnel.id, code: err.code ?? 'unknown' });
        tlsSocket.destroy();
      });
      inner.emit('connection', tlsSocket);
      socket.resume();
    },
    () => socket.destroy(),
  );
}
