/**
 * CONNECT: the explicit proxy's way to a tunnel. The target is the request's authority, the agent
 * is known by Proxy-Authorization, passthrough rules apply, and a refusal is a raw HTTP answer on
 * the socket; everything else is the one tunnel path (tunnel.ts). An intercepted tunnel is
 * TLS-terminated with a leaf for the CONNECT host; a client that does not start TLS fails the
 * handshake and is closed: Turret never relays bytes it cannot inspect (docs/security.md).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TurretError } from '../../core/errors.js';
import { parseAuthority } from '../../net/host.js';
import { clientOf } from '../record.js';
import type { Runtime } from '../runtime.js';
import { authenticate } from '../stages/identify.js';
import { checkAuthority } from '../stages/outbound.js';
import { sendErrorRaw } from '../stages/respond.js';
import { openTunnel, type Intercepted } from './tunnel.js';

export async function handleConnect(rt: Runtime, intercepted: Intercepted, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  const state = rt.state;
  socket.on('error', () => socket.destroy());
  await openTunnel(rt, intercepted, {
    socket,
    head,
    client: clientOf(socket as Socket),
    method: 'CONNECT',
    target: () => {
      checkConnectRequest(req);
      // A secret spelled into the host name would leave through DNS before any request is seen.
      checkAuthority(state.scrubbers.known(), req.url ?? '', (f) => rt.metrics?.outboundSecrets.inc({ secret: f.secret }));
      return parseAuthority(req.url ?? '', 443);
    },
    identify: () => authenticate(rt, req, (socket as Socket).remoteAddress, state.policy),
    passthrough: true,
    sniAgainst: 'the CONNECT host',
    established: () => socket.write('HTTP/1.1 200 Connection Established\r\n\r\n'),
    refuse: (err, t, scrub) => sendErrorRaw(socket, err, { method: 'CONNECT', target: t ? `${t.host}:${t.port}` : null, scrub }),
  });
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
