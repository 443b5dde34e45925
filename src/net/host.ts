/**
 * Host normalisation: every spelling of a destination becomes one canonical string before any rule
 * or classifier sees it, so "0x7f.1", "2130706433", "127。0。0。1" and "127.0.0.1" are one host.
 *
 * Names go through node:url's domainToASCII, which is the WHATWG URL host parser (UTS 46 mapping,
 * punycode, and the IPv4 number parser that accepts decimal, octal, hex and short forms). We use
 * the parser the URL standard uses rather than inet_aton's rules on purpose: agents' HTTP clients
 * follow WHATWG, and a name that WHATWG cannot read is refused rather than guessed at.
 */
import { domainToASCII } from 'node:url';
import { TurretError } from '../core/errors.js';
import { parseStrictAddress } from './classify.js';

export { isMixedScriptLookalike } from './lookalike.js';

export type HostKind = 'name' | 'ipv4' | 'ipv6';
export interface Target {
  host: string;
  port: number;
  kind: HostKind;
}

const MAX_INPUT = 1024; // longer input is refused before any parsing work
const MAX_NAME = 253; // RFC 1035 §2.3.4, without the trailing dot
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f-\u009f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/u;
// WHATWG "forbidden host code points" plus '*' and ',' which no DNS name needs.
const FORBIDDEN = /[#%/:<>?@[\\\]^|*,"'`{}]/;
const DOTTED_V4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
// Letters, digits, hyphen; underscore too, because real internal names use it (SRV-style, _acme).
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const NUMERIC_LABEL = /^(?:\d+|0x[0-9a-f]*)$/;

function bad(reason: string): TurretError {
  return new TurretError('bad_target', reason);
}

function normaliseV6(inner: string): { host: string; kind: HostKind } {
  if (inner.includes('%')) throw bad('IPv6 zone ids are not allowed');
  let addr;
  try {
    addr = parseStrictAddress(inner);
  } catch {
    throw bad('not a valid IPv6 address');
  }
  if (addr.kind() !== 'ipv6') throw bad('not a valid IPv6 address');
  return { host: addr.toString(), kind: 'ipv6' };
}

/** Canonical host and its kind. Throws TurretError('bad_target') with a reason when malformed. */
export function normaliseHost(raw: string): { host: string; kind: HostKind } {
  if (typeof raw !== 'string' || raw.length === 0) throw bad('empty host');
  if (raw.length > MAX_INPUT) throw bad('host is too long');
  if (CONTROL_OR_SPACE.test(raw)) throw bad('host contains a space, NUL or control character');
  if (raw.startsWith('[')) {
    if (!raw.endsWith(']')) throw bad('unterminated IPv6 literal');
    return normaliseV6(raw.slice(1, -1));
  }
  if (raw.includes(':')) return normaliseV6(raw); // a bare IPv6 address (config files, DNS answers)
  if (FORBIDDEN.test(raw)) throw bad('host contains a forbidden character');

  // UTS 46 mapping, punycode and WHATWG IPv4 number parsing; '' means the host is invalid.
  let ascii = domainToASCII(raw);
  if (ascii === '') throw bad('not a valid host name');
  if (ascii.endsWith('.')) ascii = ascii.slice(0, -1);
  if (ascii === '') throw bad('not a valid host name');
  if (DOTTED_V4.test(ascii)) {
    try {
      const a = parseStrictAddress(ascii);
      return { host: a.toString(), kind: 'ipv4' };
    } catch {
      throw bad('not a valid IPv4 address');
    }
  }
  if (ascii.length > MAX_NAME) throw bad('host name is longer than 253 characters');
  const labels = ascii.split('.');
  for (const label of labels) {
    if (label === '') throw bad('host name has an empty label');
    if (!LABEL.test(label)) throw bad('host name has an invalid label');
  }
  // WHATWG already refuses names whose last label is a number; kept as a guard in case the
  // runtime's URL parser ever differs, because such a name would reach getaddrinfo as an IPv4.
  if (NUMERIC_LABEL.test(labels[labels.length - 1] ?? '')) throw bad('host name ends in a number');
  return { host: ascii, kind: 'name' };
}

function parsePort(text: string): number {
  if (text === '') throw bad('empty port');
  if (!/^\d{1,5}$/.test(text)) throw bad('port is not a number');
  const port = Number(text);
  if (port < 1 || port > 65535) throw bad('port out of range');
  return port;
}

/**
 * Parse "host[:port]" or "[v6][:port]" as found in CONNECT request lines and Host headers. Userinfo,
 * paths, spaces, NUL, empty, zero and out-of-range ports and unbracketed IPv6 are refused.
 */
export function parseAuthority(authority: string, defaultPort: number): Target {
  if (typeof authority !== 'string' || authority.length === 0) throw bad('empty authority');
  if (authority.length > MAX_INPUT) throw bad('authority is too long');
  if (CONTROL_OR_SPACE.test(authority)) throw bad('authority contains a space, NUL or control character');
  if (authority.includes('@')) throw bad('userinfo is not allowed in the authority');
  if (/[/?#\\]/.test(authority)) throw bad('authority contains a path, query or fragment');

  let hostPart: string;
  let portPart: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) throw bad('unterminated IPv6 literal');
    hostPart = authority.slice(0, close + 1);
    const rest = authority.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) throw bad('unexpected text after IPv6 literal');
      portPart = rest.slice(1);
    }
  } else {
    const parts = authority.split(':');
    if (parts.length > 2) throw bad('IPv6 addresses must be in brackets');
    hostPart = parts[0] ?? '';
    portPart = parts[1];
  }
  if (hostPart === '') throw bad('empty host');
  const port = portPart === undefined ? defaultPortOrThrow(defaultPort) : parsePort(portPart);
  const { host, kind } = normaliseHost(hostPart);
  return { host, port, kind };
}

function defaultPortOrThrow(p: number): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw bad('port out of range');
  return p;
}

/** How a canonical host is written in an authority: IPv6 in brackets. */
export function formatAuthority(t: Target): string {
  return t.kind === 'ipv6' ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}
