/**
 * Client → server WebSocket frames. Every frame is parsed (client frames must be masked); a data
 * message, TEXT or BINARY, is collected whole up to a cap and handed to `onMessage` as one payload,
 * so a handle split across fragments is judged like any other; the result goes upstream as one
 * freshly masked frame. Control payloads (ping, pong, close reason) go through `onMessage` too.
 * `onMessage` may throw (a refused handle): the transform errors and the proxy closes the
 * session. A protocol error (unmasked frame, reserved bits, bad control frame, oversize
 * message) errors the same way; nothing of the offending frame is forwarded.
 */
import { Transform } from 'node:stream';
import { DEFAULT_MAX_WS_MESSAGE, encodeFrame, OP, parseFrame, WsProtocolError } from '../../scrub/ws-frames.js';
import type { MessageKind } from '../../secrets/ws-message.js';

export function createWsClientFilter(o: { onMessage: (kind: MessageKind, payload: Buffer) => Buffer; maxMessage?: number }): Transform {
  const max = o.maxMessage ?? DEFAULT_MAX_WS_MESSAGE;
  let pending: Buffer = Buffer.alloc(0);
  let message: { opcode: number; parts: Buffer[]; size: number } | null = null;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        for (;;) {
          const p = parseFrame(pending, true);
          if (!p) break;
          const { fin, opcode, payload } = p.frame;
          pending = pending.subarray(p.size);
          if (opcode === OP.continuation || opcode === OP.text || opcode === OP.binary) {
            if (opcode === OP.continuation && message === null) throw new WsProtocolError('continuation without a message', 1002);
            if (opcode !== OP.continuation && message !== null) throw new WsProtocolError('new message inside a fragmented one', 1002);
            const m = message ?? { opcode, parts: [], size: 0 };
            message = m;
            m.size += payload.length;
            if (m.size > max) throw new WsProtocolError(`message larger than ${max} bytes`, 1009);
            m.parts.push(Buffer.from(payload));
            if (fin) {
              const whole = Buffer.concat(m.parts);
              this.push(encodeFrame(m.opcode, o.onMessage(m.opcode === OP.text ? 'text' : 'binary', whole), true, true));
              message = null;
            }
          } else if (opcode === OP.close || opcode === OP.ping || opcode === OP.pong) {
            this.push(encodeFrame(opcode, o.onMessage('control', Buffer.from(payload)), true, true));
          } else throw new WsProtocolError(`unknown opcode ${opcode}`, 1002);
        }
        pending = Buffer.from(pending);
        cb();
      } catch (e) {
        cb(e instanceof Error ? e : new Error('websocket filter failed'));
      }
    },
  });
}
