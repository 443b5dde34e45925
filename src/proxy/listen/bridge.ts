/**
 * The run bridge's way into the transparent pipeline (docs/architecture.md, "turret run").
 *
 * Inside a `turret run` sandbox, clients that ignore the proxy variables dial port 80 or 443 of
 * whatever a name resolved to; the run's relay (src/sandbox/relay.ts) carries each such connection
 * to this proxy port as
 *
 *   CONNECT transparent.turret.invalid:443 HTTP/1.1      (or :80)
 *   Proxy-Authorization: Basic base64(agent:token)
 *
 * and, after the 200, the client's bytes unchanged. The connection is then exactly a redirected
 * one on the transparent listener (transparent.ts): TLS is decided by its SNI, plain HTTP by its
 * Host header, every request runs the full pipeline. The one difference is who the agent is: the
 * credential on this CONNECT, checked like any proxy credential, never a source address (any
 * local process can bind any loopback address). `.invalid` can never name a real host (RFC
 * 6761), so no rule can ever allow it as a destination by accident.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TurretError, asTurretError } from '../../core/errors.js';
import { clientOf, recordRefusal } from '../record.js';
import type { Runtime } from '../runtime.js';
import { authenticate } from '../stages/identify.js';
import { sendErrorRaw } from '../stages/respond.js';
import { replayStream } from './replay.js';
import type { TransparentHandler } from './transparent.js';

export const BRIDGE_HOST = 'transparent.turret.invalid';

/** A CONNECT to the bridge's reserved name (any letter case), or not. */
export function isBridgeConnect(req: IncomingMessage): boolean {
  const url = (req.url ?? '').toLowerCase();
  return url.startsWith(`${BRIDGE_HOST}:`);
}

export function handleBridge(rt: Runtime, web: TransparentHandler, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  let agent: string | null = null;
  try {
    const port = (req.url ?? '').slice(BRIDGE_HOST.length + 1);
    if (port !== '443' && port !== '80') throw new TurretError('bad_target', `the run bridge carries ports 80 and 443 only, not "${port.slice(0, 10)}"`);
    // The credential alone decides: without one, identifyAgent would fall back to the source
    // address, which is exactly what the bridge exists to avoid.
    if (req.headers['proxy-authorization'] === undefined) throw new TurretError('proxy_auth_required', 'the run bridge needs the agent credential (Proxy-Authorization)');
    agent = authenticate(rt, req, (socket as Socket).remoteAddress, rt.state.policy); // the header is present: no source fallback
  } catch (e) {
    const err = asTurretError(e);
    recordRefusal(rt, err, { event: 'tunnel_open', agent, method: 'CONNECT', host: BRIDGE_HOST, client: clientOf(socket as Socket) });
    sendErrorRaw(socket, err, { method: 'CONNECT', target: req.url ?? null, scrub: (s) => s });
    return;
  }
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  web.accept(head.length > 0 ? replayStream(socket, head) : socket, agent);
}
