/**
 * Reads the server name (SNI, RFC 6066 §3) from a TLS ClientHello without consuming it, for
 * transparent mode: a redirected connection carries no CONNECT line, and Node cannot read the
 * original destination (SO_ORIGINAL_DST), so the name the client asks for is the destination.
 *
 * Pure over bytes. The ClientHello may span several TLS records and TCP segments; the caller
 * feeds everything received so far and gets `need_more` until the message is complete. Anything
 * that is not a well-formed ClientHello is `invalid`: transparent mode then closes the
 * connection, it never guesses a destination.
 */

/** TLS record limit (RFC 8446 §5.1) plus the 5-byte header. */
const MAX_RECORD = 16_384;
/** Largest ClientHello we wait for; real ones are 0.5–2 KiB (post-quantum key shares included). */
export const MAX_CLIENT_HELLO = 64 * 1024;

/**
 * Real clients put the ClientHello in one record, at most four (64 KiB / 16 KiB). A client that
 * splits it into many tiny records only makes us work; more than this is refused.
 */
const MAX_RECORDS = 8;

export type HelloResult =
  /** Nothing can be decided before `atLeast` bytes have arrived. */
  | { kind: 'need_more'; atLeast: number }
  | { kind: 'invalid'; reason: string }
  /** `sni` is null when the client sent no server_name (e.g. it dialled an IP address). */
  | { kind: 'hello'; sni: string | null };

const invalid = (reason: string): HelloResult => ({ kind: 'invalid', reason });

/** True when the first byte is a TLS handshake record (0x16); HTTP starts with a method's letter. */
export function looksLikeTls(first: number | undefined): boolean {
  return first === 0x16;
}

export function parseClientHello(buf: Buffer): HelloResult {
  // Reassemble the handshake message from as many records as it takes.
  const parts: Buffer[] = [];
  let have = 0;
  let off = 0;
  let need: number | null = null;
  while (need === null || have < need) {
    if (parts.length >= MAX_RECORDS) return invalid(`the ClientHello is split into more than ${MAX_RECORDS} records`);
    if (off + 5 > buf.length) return { kind: 'need_more', atLeast: off + 5 };
    if (buf[off] !== 0x16) return invalid('expected a TLS handshake record');
    if (buf[off + 1] !== 3) return invalid('not a TLS record version');
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > MAX_RECORD) return invalid('TLS record length out of range');
    if (off + 5 + len > buf.length) return { kind: 'need_more', atLeast: off + 5 + len };
    parts.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need === null && have >= 4) {
      const hs = Buffer.concat(parts);
      if (hs[0] !== 1) return invalid('the first handshake message is not a ClientHello');
      need = 4 + hs.readUIntBE(1, 3);
      if (need > MAX_CLIENT_HELLO) return invalid('the ClientHello is too large');
    }
  }
  return readHello(Buffer.concat(parts).subarray(4, need));
}

function readHello(b: Buffer): HelloResult {
  let p = 2 + 32; // legacy_version, random
  if (p + 1 > b.length) return invalid('truncated ClientHello');
  const sid = b[p]!;
  if (sid > 32) return invalid('session id longer than 32 bytes');
  p += 1 + sid;
  if (p + 2 > b.length) return invalid('truncated ClientHello');
  const suites = b.readUInt16BE(p);
  if (suites === 0 || suites % 2 !== 0) return invalid('bad cipher suite list');
  p += 2 + suites;
  if (p + 1 > b.length) return invalid('truncated ClientHello');
  p += 1 + b[p]!; // compression methods
  if (p > b.length) return invalid('truncated ClientHello');
  if (p === b.length) return { kind: 'hello', sni: null }; // no extensions at all
  if (p + 2 > b.length) return invalid('truncated extensions');
  const extLen = b.readUInt16BE(p);
  p += 2;
  if (p + extLen !== b.length) return invalid('extensions length does not match the ClientHello');
  let sni: string | null = null;
  let seenSni = false;
  while (p < b.length) {
    if (p + 4 > b.length) return invalid('truncated extension');
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    p += 4;
    if (p + len > b.length) return invalid('truncated extension');
    if (type === 0) {
      // RFC 8446 §4.2: at most one extension of a type. Two SNIs could mean two destinations.
      if (seenSni) return invalid('more than one server_name extension');
      seenSni = true;
      const r = readServerName(b.subarray(p, p + len));
      if (typeof r !== 'string' && r !== null) return r;
      sni = r;
    }
    p += len;
  }
  return { kind: 'hello', sni };
}

function readServerName(e: Buffer): string | null | HelloResult {
  if (e.length === 0) return null; // the empty form is only valid in a ServerHello; treat as absent
  if (e.length < 2 || e.readUInt16BE(0) !== e.length - 2) return invalid('bad server_name list');
  let p = 2;
  let name: string | null = null;
  while (p < e.length) {
    if (p + 3 > e.length) return invalid('bad server_name entry');
    const type = e[p]!;
    const len = e.readUInt16BE(p + 1);
    p += 3;
    if (p + len > e.length || len === 0) return invalid('bad server_name entry');
    if (type === 0) {
      // RFC 6066 §3: no more than one name of the same type.
      if (name !== null) return invalid('more than one host_name in server_name');
      const raw = e.subarray(p, p + len);
      // A host_name is ASCII (A-labels); anything else is refused before normalisation sees it.
      if (raw.some((c) => c <= 0x20 || c >= 0x7f)) return invalid('server_name is not an ASCII host name');
      name = raw.toString('latin1');
    }
    p += len;
  }
  return name;
}
