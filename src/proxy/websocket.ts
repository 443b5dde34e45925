/**
 * WebSocket upgrades (RFC 6455), plain and inside intercepted tunnels. The handshake request
 * runs the same stages as any request (identify → target → decide → inject: handles in the
 * upgrade's headers are injected like anywhere else), then Turret dials the upstream through
 * the guarded connect of the state's upstream pool (same resolver, CA, rule exceptions), sends
 * the handshake, and relays:
 *
 *   client → upstream: bytes as sent (masked frames; a handle inside a frame is not injected)
 *   upstream → client: frames parsed and TEXT messages scrubbed (scrub/ws-frames.ts)
 *
 * `Sec-WebSocket-Extensions` is removed from the request, so permessage-deflate is never
 * negotiated and every payload can be read; an upstream that answers with an extension anyway
 * is refused. A non-101 answer is relayed scrubbed (headers, then the body through the scrubber)
 * and the connection closed.
 */
import type { IncomingMessage } from 'node:http';
import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TurretError, asTurretError } from '../core/errors.js';
import { stripQueryValues } from '../audit/record.js';
import { createWsScrubber } from '../scrub/ws-frames.js';
import { newExchange, type Exchange, type Tunnel } from './exchange.js';
import { finishExchange } from './finish.js';
import { STAGES } from './pipeline.js';
import { sendErrorRaw } from './respond.js';
import type { Runtime } from './runtime.js';

const MAX_RESPONSE_HEAD = 64 * 1024;

export async function handleUpgrade(rt: Runtime, req: IncomingMessage, socket: Duplex, head: Buffer, tunnel: Tunnel | null): Promise<void> {
  const x = newExchange(req, new ServerResponse(req), tunnel, rt.state);
  socket.on('error', () => socket.destroy());
  let upstream: Socket | undefined;
  try {
    if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket') throw new TurretError('bad_request', 'only WebSocket upgrades are supported');
    if (req.method !== 'GET') throw new TurretError('bad_request', 'a WebSocket upgrade must be a GET');
    for (const stage of STAGES) {
      if (stage.name === 'forward') break;
      await stage.run(x, rt);
    }
    upstream = await x.state.upstream.connectRaw(x.host ?? '', x.port ?? 0, x.scheme === 'https', x.decision?.rule?.addressExceptions ?? []);
    upstream.on('error', () => socket.destroy());
    const lines = [`GET ${x.path ?? '/'} HTTP/1.1`];
    for (const [k, v] of x.upstreamHeaders) if (k.toLowerCase() !== 'sec-websocket-extensions') lines.push(`${k}: ${v}`);
    lines.push('Connection: Upgrade', 'Upgrade: websocket');
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) upstream.write(head);
    const { status, rawHead, rest } = await readHead(upstream);
    x.status = status;
    const scrubber = x.state.scrubbers.get(x.injections);
    const redacted = scrubber.scrubString(rawHead);
    x.redactions += redacted.redactions.length;
    if (status === 101 && /\r\nsec-websocket-extensions:/i.test(rawHead)) {
      throw new TurretError('upstream_protocol_error', 'the upstream negotiated a WebSocket extension that was not offered');
    }
    socket.write(`${redacted.text}\r\n\r\n`);
    x.responded = true;
    const onRedaction = (): void => {
      x.redactions++;
      rt.metrics?.redactions.inc({ type: 'websocket' });
    };
    const down = status === 101 ? createWsScrubber(scrubber, { onRedaction }) : scrubber.createStream({ onRedaction });
    down.on('error', () => {
      socket.destroy();
      upstream?.destroy();
    });
    down.on('data', (c: Buffer) => (x.bytesOut += c.length));
    if (rest.length > 0) down.write(rest);
    upstream.pipe(down).pipe(socket);
    if (status === 101) {
      socket.on('data', (c: Buffer) => (x.bytesIn += c.length));
      socket.pipe(upstream);
    } else {
      upstream.once('end', () => socket.end());
    }
    const up = upstream;
    socket.once('close', () => up.destroy());
    up.once('close', () => socket.end());
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  } catch (e) {
    x.error = asTurretError(e);
    upstream?.destroy();
    if (x.error.code === 'internal_error') rt.log.error('upgrade failed', { request_id: x.id, error: String((e as Error)?.stack ?? e) });
    if (!x.responded) {
      x.status = x.error.status;
      const scrub = x.state.scrubbers.get(x.injections);
      const target = x.host ? `${x.scheme}://${x.host}:${x.port}${stripQueryValues(x.path ?? '/')}` : null;
      sendErrorRaw(socket, x.error, { method: req.method, target, scrub: (s) => scrub.scrubString(s).text });
    } else socket.destroy();
  } finally {
    finishExchange(x, rt);
  }
}

/** Read the upstream's response head (bounded); `rest` is what followed it. */
function readHead(s: Socket): Promise<{ status: number; rawHead: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err?: Error, v?: { status: number; rawHead: string; rest: Buffer }): void => {
      s.off('data', onData).off('error', onErr).off('close', onClose);
      if (err) reject(err);
      else if (v) resolve(v);
    };
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > MAX_RESPONSE_HEAD) done(new TurretError('upstream_protocol_error', 'the upstream handshake answer is too large'));
        return;
      }
      s.pause();
      const rawHead = buf.subarray(0, end).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(rawHead);
      if (!m) return done(new TurretError('upstream_protocol_error', 'the upstream sent an invalid handshake answer'));
      done(undefined, { status: Number(m[1]), rawHead, rest: buf.subarray(end + 4) });
      s.resume();
    };
    const onErr = (e: Error): void => done(new TurretError('upstream_connect_failed', 'the upstream closed the connection', { cause: e }));
    const onClose = (): void => done(new TurretError('upstream_connect_failed', 'the upstream closed the connection during the handshake'));
    s.on('data', onData).on('error', onErr).on('close', onClose);
  });
}
