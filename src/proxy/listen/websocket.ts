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
 * is refused. A non-101 answer is relayed scrubbed (headers, then the body, its chunked framing
 * decoded, through the scrubber; a content coding is refused) and the connection closed.
 */
import type { IncomingMessage } from 'node:http';
import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TurretError, asTurretError } from '../../core/errors.js';
import { stripQueryValues } from '../../audit/record.js';
import { createWsScrubber } from '../../scrub/ws-frames.js';
import { newExchange, routed, targetUrl, type Exchange, type Tunnel } from '../stages/exchange.js';
import { finishExchange } from '../stages/finish.js';
import { unframe } from './unframe.js';
import { STAGES } from '../stages/pipeline.js';
import { sendErrorRaw } from '../stages/respond.js';
import type { Runtime } from '../runtime.js';

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
    const t = routed(x).target;
    upstream = await x.state.upstream.connectRaw(t.host, t.port, t.scheme === 'https', x.decision?.rule?.addressExceptions ?? []);
    upstream.on('error', () => socket.destroy());
    const lines = [`GET ${t.path} HTTP/1.1`];
    // No extensions (permessage-deflate) and no content coding: every byte that comes back must be
    // readable by the scrubber, including the body of a refused (non-101) handshake.
    for (const [k, v] of x.upstreamHeaders) if (!['sec-websocket-extensions', 'accept-encoding'].includes(k.toLowerCase())) lines.push(`${k}: ${v}`);
    lines.push('Connection: Upgrade', 'Upgrade: websocket');
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    // Bytes the client sent after its handshake (`head`) belong to the new protocol only once the
    // upstream agreed to switch: sent before its 101, an upstream that answers 200 would parse
    // them as its next HTTP request — a request no rule ever saw.
    const { status, rawHead, rest } = await readHead(upstream);
    checkHead(rawHead);
    x.status = status;
    const scrubber = x.state.scrubbers.get(x.injections);
    // A non-101 answer is relayed as a plain response: its framing is decoded first (unframe.ts),
    // so a chunk-size line or a content coding cannot split or hide a secret from the scrubber.
    let bodyDone = (): void => undefined;
    const framed = status === 101 ? null : unframe(rawHead, () => bodyDone());
    const redacted = scrubber.scrubString(framed?.head ?? rawHead);
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
    const entry = framed?.body ?? down;
    if (framed) {
      framed.body.on('error', () => {
        socket.destroy();
        upstream?.destroy();
      });
      framed.body.pipe(down);
    }
    down.pipe(socket);
    if (rest.length > 0) entry.write(rest);
    upstream.pipe(entry);
    const up = upstream;
    if (status === 101) {
      if (head.length > 0) upstream.write(head);
      socket.on('data', (c: Buffer) => (x.bytesIn += c.length));
      socket.pipe(upstream);
      up.once('close', () => socket.end());
    } else {
      // The body is complete (or the upstream went away): end it, which flushes the scrubber.
      const finish = (): void => {
        up.unpipe(entry);
        if (!entry.writableEnded) entry.end();
        up.destroy();
      };
      bodyDone = finish;
      up.once('close', finish);
    }
    socket.once('close', () => up.destroy());
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  } catch (e) {
    x.error = asTurretError(e);
    upstream?.destroy();
    if (x.error.code === 'internal_error') rt.log.error('upgrade failed', { request_id: x.id, error: String((e as Error)?.stack ?? e) });
    if (!x.responded) {
      x.status = x.error.status;
      const scrub = x.state.scrubbers.get(x.injections);
      const target = targetUrl(x.target, stripQueryValues);
      sendErrorRaw(socket, x.error, { method: req.method, target, scrub: (s) => scrub.scrubString(s).text });
    } else socket.destroy();
  } finally {
    finishExchange(x, rt);
  }
}

/**
 * The upstream's handshake answer is relayed as a head (scrubbed), so it must be a canonical one:
 * no bare CR or LF, no obs-fold, token field names, no control characters in values. Anything
 * else is 502 — never passed on for the client's parser to guess about.
 */
function checkHead(rawHead: string): void {
  const lines = rawHead.split('\r\n');
  const ok = lines.slice(1).every((l) => /^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\x00-\x08\x0a-\x1f\x7f]*$/.test(l));
  if (!ok || /[\r\n]/.test(lines.join(''))) throw new TurretError('upstream_protocol_error', 'the upstream sent a malformed handshake answer');
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
