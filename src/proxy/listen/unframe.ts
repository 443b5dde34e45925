/**
 * The body of a raw HTTP/1.1 response that Turret relays without an HTTP client: the answer to a
 * WebSocket handshake that was not 101 (websocket.ts). The scrubber must see the body's bytes,
 * not its framing: a chunk-size line falling inside a secret splits it into pieces no finder
 * knows, and a compressed body hides it completely. So chunked framing is decoded here,
 * Content-Length is honoured, any content coding is refused (the handshake asks for none), and
 * the client gets the body delimited by the connection's close (RFC 9112 §6.3, last rule).
 */
import { Transform } from 'node:stream';
import { TurretError } from '../../core/errors.js';

const FRAMING = new Set(['transfer-encoding', 'content-length', 'connection', 'keep-alive', 'content-encoding', 'trailer']);
const MAX_LINE = 4096;

export interface Unframed {
  /** The response head without framing fields, with `Connection: close`. */
  head: string;
  /** Raw body bytes in, body bytes out; calls onDone once the framed body is complete. */
  body: Transform;
}

function refuse(why: string): never {
  throw new TurretError('upstream_protocol_error', `the upstream's handshake answer ${why}`);
}

export function unframe(rawHead: string, onDone: () => void): Unframed {
  const lines = rawHead.split('\r\n');
  const fields = lines.slice(1).map((l): [string, string] => {
    const i = l.indexOf(':');
    return i < 0 ? ['', l] : [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
  });
  const all = (n: string): string[] =>
    fields
      .filter(([k]) => k === n)
      .flatMap(([, v]) => v.split(','))
      .map((v) => v.trim().toLowerCase())
      .filter((v) => v !== '');
  if (all('content-encoding').some((c) => c !== 'identity')) refuse('is content-encoded, which cannot be inspected');
  const te = all('transfer-encoding');
  if (te.length > 0 && (te.at(-1) !== 'chunked' || te.some((c, i) => i < te.length - 1 && c !== 'identity'))) refuse('uses a transfer coding other than chunked');
  const lengths = new Set(all('content-length'));
  if (te.length === 0 && (lengths.size > 1 || [...lengths].some((v) => !/^\d{1,15}$/.test(v)))) refuse('has an invalid Content-Length');
  const kept = lines.slice(1).filter((_l, i) => !FRAMING.has(fields[i]?.[0] ?? ''));
  const head = [lines[0] ?? '', ...kept, 'Connection: close'].join('\r\n');
  if (te.length > 0) return { head, body: dechunk(onDone) };
  const len = lengths.size === 1 ? Number([...lengths][0]) : null;
  return { head, body: len === null ? new Transform({ transform: (c: Buffer, _e, cb) => cb(null, c) }) : counted(len, onDone) };
}

function counted(length: number, onDone: () => void): Transform {
  let left = length;
  if (left === 0) queueMicrotask(onDone);
  return new Transform({
    transform(c: Buffer, _e, cb) {
      if (left === 0) return cb();
      const part = c.subarray(0, left);
      left -= part.length;
      if (left === 0) queueMicrotask(onDone);
      cb(null, part);
    },
  });
}

/** Chunked transfer coding (RFC 9112 §7.1) → the bytes of the chunks; trailers are dropped. */
export function dechunk(onDone: () => void): Transform {
  let state: 'size' | 'data' | 'crlf' | 'trailers' | 'done' = 'size';
  let line = '';
  let left = 0;
  return new Transform({
    transform(c: Buffer, _e, cb) {
      let i = 0;
      const out: Buffer[] = [];
      while (i < c.length && state !== 'done') {
        if (state === 'data') {
          const part = c.subarray(i, i + left);
          out.push(part);
          i += part.length;
          left -= part.length;
          if (left === 0) state = 'crlf';
          continue;
        }
        const nl = c.indexOf(0x0a, i);
        line += c.subarray(i, nl < 0 ? c.length : nl).toString('latin1');
        if (line.length > MAX_LINE) return cb(new TurretError('upstream_protocol_error', 'a chunk line of the upstream is too long'));
        if (nl < 0) break;
        i = nl + 1;
        const text = line.replace(/\r$/, '');
        line = '';
        if (state === 'crlf') {
          if (text !== '') return cb(new TurretError('upstream_protocol_error', 'a chunk of the upstream is longer than its size'));
          state = 'size';
        } else if (state === 'size') {
          const m = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(text);
          if (!m) return cb(new TurretError('upstream_protocol_error', 'the upstream sent an invalid chunk size'));
          left = parseInt(m[1] ?? '0', 16);
          state = left === 0 ? 'trailers' : 'data';
        } else if (text === '') {
          state = 'done';
          queueMicrotask(onDone);
        }
      }
      cb(null, out.length > 0 ? Buffer.concat(out) : undefined);
    },
  });
}
