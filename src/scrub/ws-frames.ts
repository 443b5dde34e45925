/**
 * WebSocket frames (RFC 6455 §5): the codec, and scrubbing of server→client frames. The proxy
 * strips `Sec-WebSocket-Extensions` from the handshake (and refuses a 101 that negotiates one),
 * so payloads are never compressed here.
 *
 * Every server→client payload goes through the byte-safe scrubber, as a body does:
 * - data messages, TEXT and BINARY alike, stream through one incremental scrubber per message
 *   (`Scrubber.createIncremental`), so a secret split across the message's fragments is found
 *   and memory is bounded by the scrubber's window, not by the message. What the scrubber
 *   releases is sent as fragments of the same message (the first carries the opcode, the last
 *   FIN); fragment boundaries move, message boundaries do not.
 * - control frames (ping, pong, close reason) are scrubbed whole; a payload that no longer fits
 *   the 125-byte limit after replacement loses its variable part (ping/pong data, close reason).
 * - a masked server frame, a reserved bit (no extension was negotiated), a control frame over
 *   125 bytes or fragmented, an unknown opcode or a frame over MAX_WS_FRAME is a protocol error:
 *   the transform errors and the proxy closes both sides (fail closed, never forwards the bytes).
 * A secret split across two *messages* is two payloads to the agent as to the scrubber; see
 * docs/security.md, "limits of scrubbing".
 */
import { randomBytes } from 'node:crypto';
import { Transform } from 'node:stream';
import type { IncrementalScrub, Redaction, Scrubber } from './scrubber.js';

/** Largest message collected whole (client→server messages, where handles are injected). */
export const DEFAULT_MAX_WS_MESSAGE = 16 * 1024 * 1024;
/** Largest single frame accepted (a frame is held whole while parsed). */
export const MAX_WS_FRAME = 16 * 1024 * 1024;

export const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export class WsProtocolError extends Error {
  constructor(
    message: string,
    readonly closeCode: number,
  ) {
    super(message);
  }
}

export interface Frame {
  fin: boolean;
  opcode: number;
  /** Unmasked. */
  payload: Buffer;
}

/**
 * One frame from the start of buf, or null when more bytes are needed. `masked`: whether frames
 * in this direction must be masked (client → server) or must not be (server → client).
 */
export function parseFrame(buf: Buffer, masked = false): { frame: Frame; size: number } | null {
  if (buf.length < 2) return null;
  const b0 = buf[0] ?? 0;
  const b1 = buf[1] ?? 0;
  if ((b0 & 0x70) !== 0) throw new WsProtocolError('reserved bits set without a negotiated extension', 1002);
  if (((b1 & 0x80) !== 0) !== masked) throw new WsProtocolError(masked ? 'a client frame is not masked' : 'a server frame is masked', 1002);
  let len = b1 & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    const big = buf.readBigUInt64BE(2);
    if (big > BigInt(MAX_WS_FRAME)) throw new WsProtocolError('frame too large', 1009);
    len = Number(big);
    off = 10;
  }
  if (len > MAX_WS_FRAME) throw new WsProtocolError('frame too large', 1009);
  const opcode = b0 & 0x0f;
  if (opcode >= 8 && (len > 125 || (b0 & 0x80) === 0)) throw new WsProtocolError('invalid control frame', 1002);
  const keyLen = masked ? 4 : 0;
  if (buf.length < off + keyLen + len) return null;
  let payload = buf.subarray(off + keyLen, off + keyLen + len);
  if (masked) {
    const key = buf.subarray(off, off + 4);
    payload = Buffer.from(payload);
    for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] ?? 0) ^ (key[i & 3] ?? 0);
  }
  return { frame: { fin: (b0 & 0x80) !== 0, opcode, payload }, size: off + keyLen + len };
}

/** A frame; `mask` for client → server frames (a fresh random key each). */
export function encodeFrame(opcode: number, payload: Buffer, fin = true, mask = false): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.alloc(2) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (n < 126) head[1] = n;
  else if (n < 65536) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  head[1] = (head[1] ?? 0) | 0x80;
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = (body[i] ?? 0) ^ (key[i & 3] ?? 0);
  return Buffer.concat([head, key, body]);
}

/** A control frame's payload after scrubbing, cut back to what the 125-byte limit allows. */
export function controlPayload(opcode: number, payload: Buffer, scrub: (b: Buffer) => Buffer): Buffer {
  if (opcode === OP.close) {
    // Keep the status code, scrub the reason; a reason that no longer fits is dropped.
    const code = payload.subarray(0, 2);
    const reason = payload.length > 2 ? scrub(Buffer.from(payload.subarray(2))) : Buffer.alloc(0);
    return reason.length + code.length <= 125 ? Buffer.concat([code, reason]) : Buffer.from(code);
  }
  const out = scrub(Buffer.from(payload));
  return out.length <= 125 ? out : Buffer.alloc(0);
}

/** Server → client: every data message streamed through the scrubber, control payloads scrubbed. */
/**
 * `scrubber` may be a function: read at the start of each message and control frame, so a
 * secret injected into an earlier client message comes back as its handle (websocket.ts).
 */
export function createWsScrubber(scrubber: Scrubber | (() => Scrubber), o: { onRedaction?: (r: Redaction) => void } = {}): Transform {
  const current = typeof scrubber === 'function' ? scrubber : () => scrubber;
  const report = o.onRedaction ?? (() => undefined);
  let pending: Buffer = Buffer.alloc(0);
  /** The data message in progress: its opcode, whether a fragment was sent, its scrubber. */
  let message: { opcode: number; sent: boolean; scrub: IncrementalScrub } | null = null;
  const scrub = (b: Buffer): Buffer => {
    const r = current().scrubBuffer(b);
    r.redactions.forEach(report);
    return r.buf;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        for (;;) {
          const p = parseFrame(pending);
          if (!p) break;
          const { fin, opcode, payload } = p.frame;
          pending = pending.subarray(p.size);
          if (opcode === OP.continuation || opcode === OP.text || opcode === OP.binary) {
            if (opcode === OP.continuation && message === null) throw new WsProtocolError('continuation without a message', 1002);
            if (opcode !== OP.continuation && message !== null) throw new WsProtocolError('new message inside a fragmented one', 1002);
            const m = message ?? { opcode, sent: false, scrub: current().createIncremental(report) };
            message = m;
            const out = fin ? m.scrub.end(payload) : m.scrub.write(payload);
            // The first fragment sent carries the opcode; an empty one is sent only to end a message.
            if (out.length > 0 || fin) {
              this.push(encodeFrame(m.sent ? OP.continuation : m.opcode, out, fin));
              m.sent = true;
            }
            if (fin) message = null;
          } else if (opcode === OP.close || opcode === OP.ping || opcode === OP.pong) {
            this.push(encodeFrame(opcode, controlPayload(opcode, payload, scrub)));
          } else throw new WsProtocolError(`unknown opcode ${opcode}`, 1002);
        }
        // Copy what is kept: a subarray would pin the whole chunk it came from.
        pending = Buffer.from(pending);
        cb();
      } catch (e) {
        cb(e instanceof Error ? e : new Error('websocket scrubber failed'));
      }
    },
  });
}
