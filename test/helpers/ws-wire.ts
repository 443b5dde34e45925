/**
 * A small, independent WebSocket frame codec for tests (RFC 6455 §5), so tests that check
 * Turret's frame handling do not use Turret's own codec: frames with or without a mask, and a
 * parser that splits received bytes into frames (and reports what it could not parse).
 */
import { createHash, randomBytes } from 'node:crypto';

export interface WireFrame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

export function frame(opcode: number, payload: Buffer | string, o: { fin?: boolean; mask?: boolean } = {}): Buffer {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const fin = o.fin ?? true;
  const len = p.length;
  const ext = len < 126 ? Buffer.alloc(0) : len < 65536 ? Buffer.alloc(2) : Buffer.alloc(8);
  if (len >= 126 && len < 65536) ext.writeUInt16BE(len);
  else if (len >= 65536) ext.writeBigUInt64BE(BigInt(len));
  const b1 = (o.mask ? 0x80 : 0) | (len < 126 ? len : len < 65536 ? 126 : 127);
  const head = Buffer.from([(fin ? 0x80 : 0) | opcode, b1]);
  if (!o.mask) return Buffer.concat([head, ext, p]);
  const key = randomBytes(4);
  const body = Buffer.from(p.map((b, i) => b ^ (key[i % 4] ?? 0)));
  return Buffer.concat([head, ext, key, body]);
}

/** Frames at the start of buf; `rest` is an incomplete tail. */
export function frames(buf: Buffer): { frames: WireFrame[]; rest: Buffer } {
  const out: WireFrame[] = [];
  let i = 0;
  for (;;) {
    if (buf.length - i < 2) break;
    const b0 = buf[i] ?? 0;
    const b1 = buf[i + 1] ?? 0;
    let len = b1 & 0x7f;
    let off = i + 2;
    if (len === 126) {
      if (buf.length < off + 2) break;
      len = buf.readUInt16BE(off);
      off += 2;
    } else if (len === 127) {
      if (buf.length < off + 8) break;
      len = Number(buf.readBigUInt64BE(off));
      off += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    const key = masked ? buf.subarray(off, off + 4) : null;
    if (masked) off += 4;
    if (buf.length < off + len) break;
    let payload = Buffer.from(buf.subarray(off, off + len));
    if (key) payload = Buffer.from(payload.map((b, k) => b ^ (key[k % 4] ?? 0)));
    out.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload });
    i = off + len;
  }
  return { frames: out, rest: buf.subarray(i) };
}

/** Data messages (fragments joined) and control frames, in order. */
export function messages(fs: WireFrame[]): Array<{ opcode: number; payload: Buffer }> {
  const out: Array<{ opcode: number; payload: Buffer }> = [];
  let cur: { opcode: number; parts: Buffer[] } | null = null;
  for (const f of fs) {
    if (f.opcode >= 8) {
      out.push({ opcode: f.opcode, payload: f.payload });
      continue;
    }
    cur ??= { opcode: f.opcode, parts: [] };
    cur.parts.push(f.payload);
    if (f.fin) {
      out.push({ opcode: cur.opcode, payload: Buffer.concat(cur.parts) });
      cur = null;
    }
  }
  return out;
}

export function acceptKey(key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

/** A proxy-form GET of http://`authority``path` with `auth` as its Proxy-Authorization. */
export function proxiedGet(authority: string, path: string, auth: string): string {
  return `GET http://${authority}${path} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: ${auth}\r\n\r\n`;
}

/** The same GET asking for a WebSocket upgrade. */
export function proxiedUpgrade(authority: string, path: string, auth: string): string {
  return proxiedGet(authority, path, auth).replace(
    /\r\n\r\n$/,
    '\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
}

/** A 101 accepting the WebSocket upgrade whose request head is `head`. */
export function switching(head: string): string {
  const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(head)?.[1] ?? '';
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`;
}
