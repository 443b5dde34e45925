/**
 * aws-chunked uploads (x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD). Each chunk is
 * `hex-size;chunk-signature=<sig>\r\n<data>\r\n`, and each signature chains from the previous
 * one, starting at the request's seed signature. The agent's chain is made with a handle, so
 * Turret re-signs every chunk with the real signing key from the new seed (AWS S3 docs,
 * "Signature calculations for the Authorization header: transferring payload in multiple
 * chunks"). A signature is 64 hex characters either way, so Content-Length does not change.
 *
 * A chunk's header precedes its data but its signature covers the data, so one chunk is held at
 * a time (bounded by MAX_CHUNK). Trailer variants (…-TRAILER) are refused by the caller.
 */
import { createHash, createHmac } from 'node:crypto';
import { Transform } from 'node:stream';
import { TurretError } from '../core/errors.js';

export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const MAX_CHUNK = 16 * 1024 * 1024;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const HEADER_RE = /^([0-9a-fA-F]{1,8});chunk-signature=[0-9a-fA-F]{64}$/;

export function chunkSignature(key: Buffer, longDate: string, scope: string, previous: string, data: Buffer): string {
  const sts = ['AWS4-HMAC-SHA256-PAYLOAD', longDate, scope, previous, EMPTY_SHA256, createHash('sha256').update(data).digest('hex')].join('\n');
  return createHmac('sha256', key).update(sts).digest('hex');
}

function bad(reason: string): TurretError {
  return new TurretError('body_encoding_unsupported', `aws-chunked body: ${reason}`);
}

export function chunkResigner(o: { key: Buffer; longDate: string; scope: string; seed: string }): Transform {
  let buf: Buffer = Buffer.alloc(0); // what step() reads: the bytes held, joined
  let prev = o.seed;
  let state: 'header' | 'data' | 'done' = 'header';
  let hex = '';
  let size = 0;
  const step = (push: (b: Buffer) => void): void => {
    for (;;) {
      if (state === 'header') {
        const nl = buf.indexOf('\r\n');
        if (nl < 0) {
          if (buf.length > 200) throw bad('a chunk header is malformed');
          return;
        }
        const m = HEADER_RE.exec(buf.subarray(0, nl).toString('latin1'));
        if (!m) throw bad('a chunk header is not "size;chunk-signature=…" (trailers are not supported)');
        hex = m[1] ?? '0';
        size = parseInt(hex, 16);
        if (size > MAX_CHUNK) throw bad(`a chunk is larger than ${MAX_CHUNK} bytes`);
        buf = buf.subarray(nl + 2);
        state = 'data';
      } else if (state === 'data') {
        if (buf.length < size + 2) return;
        if (buf[size] !== 0x0d || buf[size + 1] !== 0x0a) throw bad('a chunk does not end with CRLF');
        const data = buf.subarray(0, size);
        const sig = chunkSignature(o.key, o.longDate, o.scope, prev, data);
        push(Buffer.concat([Buffer.from(`${hex};chunk-signature=${sig}\r\n`, 'latin1'), data, Buffer.from('\r\n')]));
        prev = sig;
        buf = buf.subarray(size + 2);
        state = size === 0 ? 'done' : 'header';
      } else {
        if (buf.length > 0) throw bad('data after the final chunk (trailers are not supported)');
        return;
      }
    }
  };
  // Bytes received and not yet consumed. While a chunk's data is incomplete its pieces are only
  // collected: joining them at every piece copied everything held again each time (quadratic: one
  // 16 MiB chunk sent in 64 KiB pieces cost 1.4 s of CPU, an agent's cheap way to burn the proxy).
  let parts: Buffer[] = [];
  let have = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      have += chunk.length;
      if (state === 'data' && have < size + 2) return cb();
      buf = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, have);
      try {
        step((b) => this.push(b));
        parts = buf.length > 0 ? [buf] : [];
        have = buf.length;
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb) {
      cb(state === 'done' && have === 0 ? null : bad('the body ended before the final chunk'));
    },
  });
}
