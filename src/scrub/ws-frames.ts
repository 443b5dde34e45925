/**
 * Scrubbing server→client WebSocket frames (RFC 6455 §5). The proxy strips
 * `Sec-WebSocket-Extensions` from the handshake, so payloads are never compressed here.
 *
 * - TEXT messages (opcode 1 plus its continuation frames) are collected whole, up to
 *   `maxMessage` bytes, scrubbed as one buffer and sent as one unfragmented TEXT frame: a secret
 *   split across fragments is found, and the length change of a replacement is harmless.
 * - BINARY messages and their continuations pass through frame by frame, unchanged.
 * - Control frames (close, ping, pong; ≤ 125 bytes) pass through; a close reason is scrubbed.
 * - A masked server frame, a reserved bit (no extension was negotiated), a control frame over
 *   125 bytes or fragmented, or a text message over the cap is a protocol error: the transform
 *   errors and the proxy closes both sides (fail closed, never forwards the bytes).
 */
import { Transform } from 'node:stream';
import type { Redaction, Scrubber } from './scrubber.js';

export const DEFAULT_MAX_WS_MESSAGE = 16 * 1024 * 1024;
/** Largest single frame accepted (binary frames are held whole while parsed). */
export const MAX_WS_FRAME = 16 * 1024 * 1024;

export class WsProtocolError extends Error {
  constructor(
    message: string,
    readonly closeCode: number,
  ) {
    super(message);
  }
}

interface Frame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** One frame from the start of buf, or null when more bytes are needed. */
export function parseFrame(buf: Buffer): { frame: Frame; size: number } | null {
  if (buf.length < 2) return null;
  const b0 = buf[0] ?? 0;
  const b1 = buf[1] ?? 0;
  if ((b0 & 0x70) !== 0) throw new WsProtocolError('reserved bits set without a negotiated extension', 1002);
  if ((b1 & 0x80) !== 0) throw new WsProtocolError('a server frame is masked', 1002);
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
  if (buf.length < off + len) return null;
  return { frame: { fin: (b0 & 0x80) !== 0, opcode, payload: buf.subarray(off, off + len) }, size: off + len };
}

/** An unmasked frame (server → client). */
export function encodeFrame(opcode: number, payload: Buffer, fin = true): Buffer {
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
  return Buffer.concat([head, payload]);
}

export function createWsScrubber(scrubber: Scrubber, o: { maxMessage?: number; onRedaction?: (r: Redaction) => void } = {}): Transform {
  const maxMessage = o.maxMessage ?? DEFAULT_MAX_WS_MESSAGE;
  const report = o.onRedaction ?? (() => undefined);
  let pending: Buffer = Buffer.alloc(0);
  /** Current data message: 'text' collects, 'binary' passes continuations through. */
  let message: 'text' | 'binary' | null = null;
  let text: Buffer[] = [];
  let textSize = 0;
  const scrub = (b: Buffer): Buffer => {
    const r = scrubber.scrubBuffer(b);
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
          const raw = pending.subarray(0, p.size);
          pending = pending.subarray(p.size);
          switch (opcode) {
            case 0x0: // continuation
              if (message === null) throw new WsProtocolError('continuation without a message', 1002);
              if (message === 'binary') this.push(Buffer.from(raw));
              else collect(payload);
              if (fin) finish(this);
              break;
            case 0x1:
              if (message !== null) throw new WsProtocolError('new message inside a fragmented one', 1002);
              message = 'text';
              collect(payload);
              if (fin) finish(this);
              break;
            case 0x2:
              if (message !== null) throw new WsProtocolError('new message inside a fragmented one', 1002);
              this.push(Buffer.from(raw));
              message = fin ? null : 'binary';
              break;
            case 0x8: {
              // Close: keep the code, scrub the reason; a reason that no longer fits is dropped.
              const code = payload.subarray(0, 2);
              const reason = payload.length > 2 ? scrub(Buffer.from(payload.subarray(2))) : Buffer.alloc(0);
              this.push(encodeFrame(0x8, reason.length + code.length <= 125 ? Buffer.concat([code, reason]) : Buffer.from(code)));
              break;
            }
            case 0x9:
            case 0xa:
              this.push(Buffer.from(raw));
              break;
            default:
              throw new WsProtocolError(`unknown opcode ${opcode}`, 1002);
          }
        }
        // Copy what is kept: a subarray would pin the whole chunk it came from.
        pending = Buffer.from(pending);
        cb();
      } catch (e) {
        cb(e instanceof Error ? e : new Error('websocket scrubber failed'));
      }
    },
  });

  function collect(payload: Buffer): void {
    textSize += payload.length;
    if (textSize > maxMessage) throw new WsProtocolError(`text message larger than ${maxMessage} bytes`, 1009);
    text.push(Buffer.from(payload));
  }

  function finish(t: Transform): void {
    if (message === 'text') t.push(encodeFrame(0x1, scrub(Buffer.concat(text))));
    message = null;
    text = [];
    textSize = 0;
  }
}
