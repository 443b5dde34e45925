/**
 * Which codings of an upstream response Turret can undo before scrubbing, and the refusal of every
 * other one. A body the scrubber cannot read is never relayed: the secret could sit inside it.
 *
 * - Content-Encoding: exactly one of gzip, x-gzip, deflate, br (any letter case, one header line
 *   or several naming the same single coding) is decoded; identity or none passes. Anything else —
 *   zstd (Node 20 has no zstd decoder; zlib's arrived in Node 22.15), compress, an unknown name, or
 *   a stack such as `gzip, gzip` or `identity, gzip` — is 502 `upstream_coding_unsupported`.
 *   Turret never asks for those: the Accept-Encoding it sends upstream names only what is here.
 * - Transfer-Encoding: only exactly `chunked` (undici has already removed that framing). `gzip`,
 *   `gzip, chunked`, `chunked, chunked` or any other transfer coding is refused the same way:
 *   undici does not decode transfer codings, so the bytes it hands over would still be coded.
 */
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import { TurretError } from '../../core/errors.js';

/** Content codings Turret can decode in order to scrub (also what it may ask for upstream). */
export const DECODABLE = new Set(['gzip', 'x-gzip', 'deflate', 'br', 'identity']);

type HeaderValue = string | string[] | undefined;

/** A field's comma-separated list over all its lines: trimmed, lower-cased, empty items dropped. */
export function fieldList(v: HeaderValue): string[] {
  // Most responses have neither field: no four intermediate arrays for nothing.
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : v === undefined ? [] : [v])
    .flatMap((line) => line.split(','))
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
}

function refuse(what: string): never {
  // The name is quoted for the agent: bounded and reduced to token characters.
  const shown = what.replace(/[^a-z0-9!#$%&'*+.^_`|~, -]/g, '?').slice(0, 40);
  throw new TurretError('upstream_coding_unsupported', `the upstream used ${shown}, which cannot be decoded and inspected`);
}

/** Throws unless the response's transfer coding is none or exactly `chunked`. */
export function checkTransferCoding(te: HeaderValue): void {
  const list = fieldList(te);
  if (list.length === 0 || (list.length === 1 && list[0] === 'chunked')) return;
  refuse(`transfer coding "${list.join(', ')}"`);
}

/**
 * The single content coding to undo ('identity' when none), or a refusal. Several lines that
 * name the same coding once each (`gzip` twice) are still a stack: the body was coded twice.
 */
export function contentCoding(ce: HeaderValue): string {
  const list = fieldList(ce);
  if (list.length === 0) return 'identity';
  if (list.length > 1) refuse(`content coding "${list.join(', ')}"`);
  const c = list[0] ?? '';
  if (!DECODABLE.has(c)) refuse(`content coding "${c}"`);
  return c;
}

/** A decoder for a coding `contentCoding` accepted; null for identity. */
export function decoderFor(coding: string): Transform | null {
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      return zlib.createGunzip();
    case 'deflate':
      return zlib.createInflate();
    case 'br':
      return zlib.createBrotliDecompress();
    default:
      return null;
  }
}
