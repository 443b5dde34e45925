/**
 * One tunnel path for both ways a client asks for one: an explicit CONNECT (connect.ts) and a
 * redirected TLS connection in transparent mode (transparent.ts). The steps are the same —
 * target → identify → look-alike check → decide the tunnel → take a tunnel slot → early address
 * check → records → intercept (TLS with a leaf for the host, decrypted connection handed to the
 * inner HTTP server, where every request runs the full pipeline) or, for a passthrough rule, an
 * opaque relay. The callers differ only in how the target and the agent are known, whether
 * passthrough applies, and how a refusal reaches the client.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { TurretError, asTurretError } from '../../core/errors.js';
import type { HostKind } from '../../net/host.js';
import { normaliseHost } from '../../net/host.js';
import { decideTunnel } from '../../policy/decide.js';
import { holdTunnelSlot } from '../limits.js';
import { recordRefusal, recordTunnel } from '../record.js';
import type { Runtime } from '../runtime.js';
import { newId, type Tunnel } from '../stages/exchange.js';
import { checkLookalike, checkTunnelTarget } from '../stages/guards.js';
import { replayStream } from './replay.js';
import { HandshakeWatch } from './handshake.js';

/** Takes a decrypted tunnel connection (server.ts: attaches the tunnel, hands it to the inner server). */
/** A decrypted tunnel handed to the inner server; `outer` is the client's connection it runs in. */
export type Intercepted = (tlsSocket: Duplex, tunnel: Tunnel, outer: Duplex) => void;

export interface TunnelTarget {
  host: string;
  port: number;
  kind: HostKind;
}

export interface TunnelRequest {
  /** The client's socket; nothing has been answered on it yet. */
  socket: Duplex;
  /** Bytes already read from it (after a CONNECT head; a peeked ClientHello). */
  head: Buffer;
  client: string;
  /** The request method for the records ('CONNECT'), or undefined for a redirected connection. */
  method?: string;
  /** Where the tunnel goes; throws a TurretError for a malformed target. */
  target(): TunnelTarget;
  /** Which agent asks; throws 407 proxy_auth_required. */
  identify(): string;
  /** Passthrough rules apply (explicit CONNECT only: a redirected client never asked for a tunnel). */
  passthrough: boolean;
  /** Prefix of the allowed record's reason (says which listener opened it). */
  reasonPrefix?: string;
  /** What the SNI is compared with, for the 421 message ("the CONNECT host"). */
  sniAgainst: string;
  /** The tunnel is allowed: answer before the first byte relayed (CONNECT: 200). */
  established?(): void;
  /** Deliver a refusal (already recorded); `target` when it was known. */
  refuse(err: TurretError, target: TunnelTarget | null, scrub: (s: string) => string): void;
}

export async function openTunnel(rt: Runtime, intercepted: Intercepted, r: TunnelRequest): Promise<void> {
  const state = rt.state;
  const { socket } = r;
  let agent: string | null = null;
  let target: TunnelTarget | null = null;
  try {
    target = r.target();
    agent = r.identify();
    checkLookalike(state.policy, agent, target.host);
    const d = decideTunnel(state.policy, agent, target.host, target.port);
    if (!d.allow) throw new TurretError(d.code ?? 'policy_denied', d.reason, { rule: d.rule?.id });
    holdTunnelSlot(rt, agent, socket); // 429 too_many_tunnels; given back when the socket closes
    // Bytes the client sends meanwhile wait in the socket's buffer (it is not flowing).
    await checkTunnelTarget(rt, state, agent, target);
    clientStillThere(socket);
    const tunnel: Tunnel = { id: newId(), agent, host: target.host, port: target.port, sni: null, mismatch: null, client: r.client };
    // Passthrough: dial before answering, so a refused or dead upstream is a readable error.
    const opaque = r.passthrough && d.passthrough ? await state.upstream.connectRaw(target.host, target.port, false, d.rule?.addressExceptions ?? []) : null;
    if (opaque && socket.destroyed) opaque.destroy(); // dialled for a client already gone
    clientStillThere(socket);
    const bytes = { in: 0, out: 0 };
    const facts = { id: tunnel.id, agent, client: r.client, host: target.host, port: target.port, rule: d.rule?.id ?? null, reason: `${r.reasonPrefix ?? ''}${d.reason}` };
    // An intercepted tunnel's close record waits for the TLS side, to name a failed handshake.
    const watch = opaque ? null : watchHandshake(rt, socket, { agent, host: target.host, client: r.client, tunnel_id: tunnel.id });
    const ending = watch ? { ending: () => watch.cause() } : {};
    recordTunnel(rt, { ...facts, ...(r.method ? { method: r.method } : {}), mode: opaque ? 'passthrough' : 'intercept', ...(opaque ? { bytes } : {}), ...ending }, watch ?? socket);
    r.established?.();
    if (opaque) return relayOpaque(socket, r.head, opaque, bytes);
    const onSni = (seen: string): void => {
      tunnel.sni = seen;
      // Every request in the tunnel is then refused (421) rather than trusting either name.
      if (seen !== tunnel.host) tunnel.mismatch = `TLS SNI ${seen} does not match ${r.sniAgainst} ${tunnel.host}`;
    };
    await terminateTls(rt, socket, r.head, tunnel.host, onSni, (tlsSocket) => intercepted(tlsSocket, tunnel, socket), watch ?? undefined);
  } catch (e) {
    const err = asTurretError(e);
    if (err.code === 'internal_error') rt.log.error('tunnel failed', { error: String((e as Error)?.stack ?? e) });
    recordRefusal(rt, err, { event: 'tunnel_open', agent, client: r.client, method: r.method, scheme: 'https', host: target?.host, port: target?.port });
    if (!socket.destroyed) r.refuse(err, target, (s) => state.scrubbers.get().scrubString(s).text);
  }
}

/**
 * The client went away while the tunnel waited (the target's DNS answer, the passthrough dial):
 * nothing is opened for it. Its close has already happened, so a tunnel_open record written now
 * would never get its tunnel_close (recordTunnel waits for the close), and an opaque upstream
 * connection would stay open for nobody. The refusal record names the client's doing.
 */
function clientStillThere(socket: Duplex): void {
  if (socket.destroyed) throw new TurretError('client_closed', 'the client closed the connection before the tunnel was opened');
}

/**
 * Watches the client's TLS handshake on `socket` (handshake.ts): a failure is logged at info once,
 * with what is known of the connection, when it closes.
 */
export function watchHandshake(rt: Runtime, socket: Duplex, facts: Record<string, unknown>): HandshakeWatch {
  return new HandshakeWatch(socket, (err) => rt.log.info('tunnel TLS handshake failed', { ...facts, code: err.code, reason: err.reason }));
}

/**
 * Server-side TLS over the client socket with a leaf for `host`, replaying `head` first, handed to
 * `use` before the socket flows again. `onSni` sees the canonical SNI the client sent. A client
 * that does not speak TLS fails the handshake: nothing is ever relayed raw. `watch` learns how
 * the handshake went (a new one, logging only, when the caller keeps no record of it).
 */
export async function terminateTls(
  rt: Runtime,
  socket: Duplex,
  head: Buffer,
  host: string,
  onSni: ((seen: string) => void) | null,
  use: (t: tls.TLSSocket) => void,
  watch: HandshakeWatch = watchHandshake(rt, socket, { host }),
): Promise<void> {
  socket.pause();
  let context: tls.SecureContext;
  try {
    context = await rt.leaves.contextFor(host);
  } catch {
    socket.destroy();
    return;
  }
  if (socket.destroyed) return;
  // TLSSocket reads a net.Socket's handle directly from C++, so bytes already read off it would be
  // lost; only then do we go through a JS stream.
  const transport = head.length > 0 ? replayStream(socket, head) : socket;
  const tlsSocket = new tls.TLSSocket(transport as Socket, {
    isServer: true,
    secureContext: context,
    // http/1.0 too: a client offering only that (curl -0) must not fail the handshake.
    ALPNProtocols: ['http/1.1', 'http/1.0'],
    SNICallback: (servername, cb) => {
      let seen: string;
      try {
        seen = normaliseHost(servername).host;
      } catch {
        seen = servername.slice(0, 100);
      }
      onSni?.(seen);
      cb(null, context);
    },
  });
  tlsSocket.on('error', (err: Error & { code?: string }) => {
    rt.log.debug('tunnel TLS error', { host, code: err.code ?? 'unknown' });
    tlsSocket.destroy();
  });
  watch.attach(tlsSocket);
  use(tlsSocket);
  socket.resume();
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
