/**
 * WebSocket upgrades (RFC 6455), plain and inside intercepted tunnels. The handshake request
 * runs the same stages as any request (identify → target → decide → inject: handles in the
 * upgrade's headers are injected like anywhere else); then Node's HTTP client sends the handshake
 * over a socket from the pool's guarded connect (same resolver, CA, rule exceptions) and parses
 * the answer:
 *
 *   'response' (not 101): relayed like any response (respond-upstream.ts `respond`: headers scrubbed,
 *     framing decoded by Node's parser, codings checked and decoded, body scrubbed), then closed.
 *   'upgrade' (101): the head is scrubbed and sent, then frames are relayed:
 *     upstream → client: every message and control payload scrubbed (scrub/ws-frames.ts)
 *     client → upstream: messages judged whole (ws-client.ts); handles injected into TEXT
 *       messages of secrets that opt in with `body: true`, refused anywhere else
 *       (secrets/ws-message.ts)
 *
 * `Sec-WebSocket-Extensions` is removed from the request, so permessage-deflate is never
 * negotiated and every payload can be read; a 101 that names an extension anyway is refused.
 * A refusal after the switch (a handle where none may go, a protocol error) closes the session
 * with a close frame naming the code; the one audit record carries it.
 */
import http, { type IncomingMessage } from 'node:http';
import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TurretError, asTurretError, isTurretError } from '../../core/errors.js';
import { stripQueryValues } from '../../audit/record.js';
import type { Scrubber } from '../../scrub/scrubber.js';
import { createWsScrubber, encodeFrame, OP, WsProtocolError } from '../../scrub/ws-frames.js';
import { injectMessage, messageMode } from '../../secrets/ws-message.js';
import type { Used } from '../../secrets/inject.js';
import { newExchange, routed, targetUrl, type ClientRequest, type Exchange, type Tunnel } from '../stages/exchange.js';
import { finishExchange } from '../stages/finish.js';
import { respond, upstreamError } from '../stages/respond-upstream.js';
import { injectContext, STAGES } from '../stages/pipeline.js';
import { sendErrorRaw } from '../stages/respond.js';
import type { Runtime } from '../runtime.js';
import { createWsClientFilter } from './ws-client.js';
import { rearmIdle, WAITS, type ClientConnection } from './connection.js';

type Answer = { kind: 'upgrade'; res: IncomingMessage; socket: Duplex; head: Buffer } | { kind: 'response'; res: IncomingMessage };

export async function handleUpgrade(rt: Runtime, req: ClientRequest, socket: Duplex, head: Buffer, tunnel: Tunnel | null, conn: ClientConnection | null): Promise<void> {
  // node:http's own response, written on the handed-over socket (relayAnswer): it reads only the
  // request's method, version and `te` field, which both kinds of request have.
  const x = newExchange(req, new ServerResponse(req as IncomingMessage), tunnel, rt.state);
  socket.on('error', () => socket.destroy());
  let upstream: Socket | undefined;
  // Pipelined behind requests whose responses are still being sent: Node hands the socket over at
  // once, so anything written now would land inside those responses. The stages run (they write
  // nothing); the upstream is asked, and a refusal written, only after those responses. A
  // connection that closed meanwhile (the client left, a response said Connection: close) ends
  // this exchange unanswered.
  const earlier = conn?.responsesClosed(socket) ?? null;
  if (earlier) rt.log.debug(WAITS, { request_id: x.id });
  try {
    if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket') throw new TurretError('bad_request', 'only WebSocket upgrades are supported');
    if (req.method !== 'GET') throw new TurretError('bad_request', 'a WebSocket upgrade must be a GET');
    for (const stage of STAGES) {
      if (stage.name === 'forward') break;
      await stage.run(x, rt);
    }
    if (earlier) {
      await earlier;
      if (!socket.writable) throw new TurretError('client_closed', 'the connection closed before the responses ahead of the WebSocket upgrade were sent');
    }
    rearmIdle(rt, socket);
    const t = routed(x).target;
    upstream = await x.state.upstream.connectRaw(t.host, t.port, t.scheme === 'https', x.decision?.rule?.addressExceptions ?? []);
    clientStillThere(socket);
    const answer = await handshake(upstream, x, rt.limits.headersTimeoutMs);
    clientStillThere(socket);
    const scrubber = x.state.scrubbers.get(x.injections);
    const onRedaction = (): void => {
      x.redactions++;
      rt.metrics?.redactions.inc({ type: 'websocket' });
    };
    if (answer.kind === 'response') {
      await relayAnswer(x, answer.res, socket, scrubber, rt);
      return;
    }
    // Client bytes after its handshake (`head`) belong to the new protocol only now that the
    // upstream agreed to switch: sent earlier, an upstream answering 200 would parse them as its
    // next HTTP request — one no rule ever saw.
    await relayFrames(rt, x, answer, socket, head, scrubber, onRedaction);
  } catch (e) {
    x.error = asTurretError(e);
    upstream?.destroy();
    if (x.error.code === 'internal_error') rt.log.error('upgrade failed', { request_id: x.id, error: String((e as Error)?.stack ?? e) });
    if (earlier) await earlier;
    if (!x.responded && socket.writable) {
      x.status = x.error.status;
      try {
        const scrub = x.state.scrubbers.get(x.injections);
        const target = targetUrl(x.target, stripQueryValues);
        sendErrorRaw(socket, x.error, { method: req.method, target, scrub: (s) => scrub.scrubString(s).text });
      } catch {
        // Answering failed too (the scrubber could not be built, a bug): the connection is cut.
        // This function never rejects: server.ts does not wait for it, and an unhandled
        // rejection ends the process. The record below still names the first cause.
        socket.destroy();
      }
    } else socket.destroy();
  } finally {
    finishExchange(x, rt);
  }
}

/**
 * The client went away while the upgrade waited (the stages, the upstream's connect or its
 * handshake answer): nothing more is done for it. The session's close listeners would be attached
 * after its close, so the upstream connection would be held open for nobody and the record would
 * say the session completed.
 */
function clientStillThere(socket: Duplex): void {
  if (socket.destroyed) throw new TurretError('client_closed', 'the client closed the connection before the upstream answered the WebSocket handshake');
}

/** Send the handshake with Node's HTTP client on the guarded socket; the answer, parsed. */
function handshake(sock: Socket, x: Exchange, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // No extensions (permessage-deflate) and no content coding: every byte that comes back must be
    // readable by the scrubber, the body of a refused (non-101) handshake included.
    const headers: string[] = [];
    for (const [k, v] of x.upstreamHeaders) if (!['sec-websocket-extensions', 'accept-encoding'].includes(k.toLowerCase())) headers.push(k, v);
    headers.push('Connection', 'Upgrade', 'Upgrade', 'websocket');
    const r = http.request({ createConnection: () => sock, method: 'GET', path: routed(x).target.path, headers: headers as unknown as http.OutgoingHttpHeaders, setHost: false });
    const timer = setTimeout(() => r.destroy(new TurretError('upstream_timeout', 'the upstream did not answer the WebSocket handshake in time')), timeoutMs);
    const done = (): void => clearTimeout(timer);
    r.on('upgrade', (res: IncomingMessage, s: Duplex, h: Buffer) => {
      done();
      resolve({ kind: 'upgrade', res, socket: s, head: h });
    });
    r.on('response', (res: IncomingMessage) => {
      done();
      resolve({ kind: 'response', res });
    });
    r.on('error', (e) => {
      done();
      reject(upstreamError(e));
    });
    r.end();
  });
}

/** A refused handshake (not 101): relayed like any response, then the connection is closed. */
async function relayAnswer(x: Exchange, res: IncomingMessage, socket: Duplex, scrubber: Scrubber, rt: Runtime): Promise<void> {
  res.on('error', () => undefined); // the relay's pipeline reports it
  x.res.shouldKeepAlive = false;
  (x.res as ServerResponse).assignSocket(socket as Socket);
  try {
    await respond(
      x,
      {
        statusCode: res.statusCode ?? 502,
        headers: res.headers,
        body: res,
        get trailers() {
          return res.trailers;
        },
      },
      scrubber,
      (type) => rt.metrics?.redactions.inc({ type }),
    );
  } finally {
    res.socket?.destroy();
  }
  (x.res as ServerResponse).detachSocket(socket as Socket);
  socket.end();
  await closed(socket);
}

/** The 101 head for the client: fields scrubbed, a field whose name holds a secret dropped. */
function switchHead(res: IncomingMessage, scrubber: Scrubber, count: (n: number) => void): Buffer {
  const out: Buffer[] = [Buffer.from('HTTP/1.1 101 Switching Protocols\r\n')];
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
    const name = scrubber.scrubBuffer(Buffer.from(res.rawHeaders[i] ?? '', 'latin1'));
    count(name.redactions.length);
    if (name.redactions.length > 0) continue;
    const value = scrubber.scrubBuffer(Buffer.from(res.rawHeaders[i + 1] ?? '', 'latin1'));
    count(value.redactions.length);
    out.push(name.buf, Buffer.from(': '), value.buf, Buffer.from('\r\n'));
  }
  out.push(Buffer.from('\r\n'));
  return Buffer.concat(out);
}

/** A close frame for the client naming why the session ended (RFC 6455 §7.4: 1008 policy, 1002 protocol). */
function closeFrame(code: number, reason: string): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(code);
  return encodeFrame(OP.close, Buffer.concat([p, Buffer.from(reason.slice(0, 120), 'utf8')]));
}

async function relayFrames(
  rt: Runtime,
  x: Exchange,
  a: Extract<Answer, { kind: 'upgrade' }>,
  socket: Duplex,
  head: Buffer,
  scrubber: Scrubber,
  onRedaction: () => void,
): Promise<void> {
  const up = a.socket;
  up.on('error', () => socket.destroy());
  if (a.res.headers['sec-websocket-extensions'] !== undefined) {
    up.destroy();
    throw new TurretError('upstream_protocol_error', 'the upstream negotiated a WebSocket extension that was not offered');
  }
  x.status = 101;
  socket.write(switchHead(a.res, scrubber, (n) => (x.redactions += n)));
  x.responded = true;

  // One end for the session, whichever side or failure comes first.
  const end = (e: unknown, toClient: Buffer | null): void => {
    x.error ??=
      e instanceof WsProtocolError
        ? e.closeCode === 1009
          ? new TurretError('body_too_large', e.message)
          : new TurretError(toClient ? 'bad_request' : 'upstream_protocol_error', `invalid WebSocket frame: ${e.message}`)
        : asTurretError(e);
    down.unpipe(socket);
    up.destroy();
    if (toClient) socket.end(toClient);
    else socket.destroy();
  };
  const { agent, target } = routed(x);
  const ctx = injectContext(x, rt, agent, target);
  const mode = messageMode(ctx);
  const used: Used = new Map(x.injections.map((i) => [i.handle, i]));
  // A secret first injected inside a message is echoed back as its handle from then on.
  let current = { size: used.size, scrubber };
  const scrubberNow = (): Scrubber => {
    if (used.size !== current.size) current = { size: used.size, scrubber: x.state.scrubbers.get([...used.values()]) };
    return current.scrubber;
  };
  const down = createWsScrubber(scrubberNow, { onRedaction });
  down.on('error', (e) => end(e, null));
  down.on('data', (c: Buffer) => (x.bytesOut += c.length));
  down.pipe(socket);
  if (a.head.length > 0) down.write(a.head);
  up.pipe(down);

  const client = createWsClientFilter({ onMessage: (kind, p) => injectMessage(ctx, mode, kind, p, used) });
  client.on('error', (e) => {
    const code = isTurretError(e) ? e.code : e instanceof WsProtocolError ? 'bad_request' : 'internal_error';
    end(e, closeFrame(isTurretError(e) ? 1008 : e instanceof WsProtocolError ? e.closeCode : 1011, `turret: ${code}`));
  });
  socket.on('data', (c: Buffer) => (x.bytesIn += c.length));
  client.pipe(up);
  if (head.length > 0) client.write(head);
  socket.pipe(client);
  up.once('close', () => {
    if (!down.writableEnded) down.end();
  });
  socket.once('close', () => up.destroy());
  await closed(socket);
  x.injections = [...used.values()];
}

function closed(s: Duplex): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed || (s as Socket).closed) resolve();
    else s.once('close', () => resolve());
  });
}
