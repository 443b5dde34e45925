/**
 * AWS SigV4 re-signing. An agent whose access key id and secret key are handles signs as usual;
 * its signature (made with a handle) is worthless, so Turret signs the same request again with
 * the real credentials, using the maintained signer (@smithy/signature-v4) for the canonical
 * request. The agent's choices are kept: the same signed header list, date, region, service and
 * payload hash (a hex digest, UNSIGNED-PAYLOAD, or streaming aws-chunked, whose per-chunk
 * signatures sigv4-chunked.ts re-chains from the new seed signature).
 *
 * Turret does not verify the agent's signature: the agent is authenticated by its proxy
 * credential and the handle by resolve.ts, and the upstream verifies the new signature.
 */
import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { TurretError } from '../core/errors.js';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SigV4Auth {
  /** The access key id the agent used: a handle. */
  accessKeyId: string;
  shortDate: string;
  region: string;
  service: string;
  signedHeaders: string[];
}

/** node:crypto behind the Checksum interface the smithy signer expects. */
class Sha256 {
  private readonly h;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuf(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(toBuf(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {}
}

function toBuf(d: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof d === 'string') return Buffer.from(d, 'utf8');
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d);
}

const AUTH_RE = /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=[0-9a-fA-F]{64}\s*$/;

function parseCredential(cred: string, signedHeaders: string): SigV4Auth | null {
  const parts = cred.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || !/^\d{8}$/.test(parts[1] ?? '')) return null;
  const [accessKeyId = '', shortDate = '', region = '', service = ''] = parts;
  if (!/^[a-z0-9-]{1,40}$/.test(region) || !/^[a-z0-9-]{1,40}$/.test(service)) return null;
  return { accessKeyId, shortDate, region, service, signedHeaders: signedHeaders.toLowerCase().split(';').filter(Boolean) };
}

export function parseAuthorization(value: string): SigV4Auth | null {
  const m = AUTH_RE.exec(value);
  return m ? parseCredential(m[1] ?? '', m[2] ?? '') : null;
}

export function isSigV4Authorization(value: string): boolean {
  return /^AWS4-HMAC-SHA256\s/i.test(value);
}

/** 20130524T000000Z → Date. */
export function parseAmzDate(s: string | undefined): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s ?? '');
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : null;
}

export function splitTarget(target: string): { path: string; rawQuery: string | null } {
  const q = target.indexOf('?');
  return q < 0 ? { path: target, rawQuery: null } : { path: target.slice(0, q), rawQuery: target.slice(q + 1) };
}

/** Query string → decoded map (`+` is literal in SigV4, not a space). */
export function parseQuery(raw: string | null): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (!raw) return out;
  for (const kv of raw.split('&')) {
    if (!kv) continue;
    const eq = kv.indexOf('=');
    let k: string;
    let v: string;
    try {
      k = decodeURIComponent(eq < 0 ? kv : kv.slice(0, eq));
      v = eq < 0 ? '' : decodeURIComponent(kv.slice(eq + 1));
    } catch {
      throw new TurretError('bad_request', 'the query string of a SigV4 request is not valid percent-encoding');
    }
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

export function encodeRfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function serializeQuery(q: Record<string, string | string[] | null>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(q)) {
    for (const item of Array.isArray(v) ? v : [v ?? '']) parts.push(`${encodeRfc3986(k)}=${encodeRfc3986(item)}`);
  }
  return parts.join('&');
}

function signer(creds: AwsCredentials, auth: SigV4Auth): SignatureV4 {
  // S3 signs the path as sent; every other service double-encodes it (AWS SigV4 docs).
  return new SignatureV4({ credentials: creds, region: auth.region, service: auth.service, sha256: Sha256, uriEscapePath: auth.service !== 's3', applyChecksum: false });
}

/** The SigV4 signing key (also what chunk signatures are made with). */
export function signingKey(secretAccessKey: string, shortDate: string, region: string, service: string): Buffer {
  let k = createHmac('sha256', `AWS4${secretAccessKey}`).update(shortDate).digest();
  for (const part of [region, service, 'aws4_request']) k = createHmac('sha256', k).update(part).digest();
  return k;
}

export interface HeaderResign {
  authorization: string;
  amzDate: string;
  signature: string;
  scope: string;
}

/** The headers the agent signed (and `also`, when present): what the new signature covers. */
function signedSubset(all: Record<string, string>, signed: Set<string>, also?: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(all)) if (signed.has(k) || k === also) out[k] = v;
  return out;
}

/**
 * Sign a header-authenticated request again with `creds`. `headers` are the values that will be
 * sent (lower-case names); only the agent's signed names are signed. `body` is needed only when
 * no x-amz-content-sha256 header gives the payload hash.
 */
export async function resignHeaders(o: {
  method: string;
  host: string;
  target: string;
  headers: Record<string, string>;
  auth: SigV4Auth;
  creds: AwsCredentials;
  date: Date;
  body: Buffer | null;
}): Promise<HeaderResign> {
  const { path, rawQuery } = splitTarget(o.target);
  const signed = new Set(o.auth.signedHeaders);
  const headers = signedSubset(o.headers, signed, 'x-amz-content-sha256');
  const request = { method: o.method, protocol: 'https:', hostname: o.host, path, query: parseQuery(rawQuery), headers, body: o.body ?? undefined };
  const out = await signer(o.creds, o.auth).sign(request as never, { signingDate: o.date, signableHeaders: signed });
  const h = (out as { headers: Record<string, string> }).headers;
  const authorization = h.authorization ?? '';
  const signature = /Signature=([0-9a-f]{64})/.exec(authorization)?.[1] ?? '';
  const amzDate = h['x-amz-date'] ?? '';
  return { authorization, amzDate, signature, scope: `${amzDate.slice(0, 8)}/${o.auth.region}/${o.auth.service}/aws4_request` };
}

const PRESIGN_PARAMS = ['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature', 'X-Amz-Security-Token'];

export function presignedAuth(target: string): { auth: SigV4Auth; date: Date; expires: number } | null {
  const q = parseQuery(splitTarget(target).rawQuery);
  const one = (k: string): string | undefined => (typeof q[k] === 'string' ? (q[k] as string) : undefined);
  if (one('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return null;
  const auth = parseCredential(one('X-Amz-Credential') ?? '', one('X-Amz-SignedHeaders') ?? 'host');
  const date = parseAmzDate(one('X-Amz-Date'));
  const expires = Number(one('X-Amz-Expires') ?? '');
  if (!auth || !date || !Number.isInteger(expires) || expires < 1 || expires > 604800) return null;
  return { auth, date, expires };
}

/** Presign the URL again with `creds`; returns the new target (path + query). */
export async function represign(o: {
  method: string;
  host: string;
  target: string;
  headers: Record<string, string>;
  auth: SigV4Auth;
  creds: AwsCredentials;
  date: Date;
  expires: number;
}): Promise<string> {
  const { path, rawQuery } = splitTarget(o.target);
  const query = parseQuery(rawQuery);
  for (const k of PRESIGN_PARAMS) delete query[k];
  const signed = new Set(o.auth.signedHeaders);
  const headers = signedSubset(o.headers, signed);
  // S3 presigned URLs sign UNSIGNED-PAYLOAD; other services the empty payload.
  const sha = 'x-amz-content-sha256';
  if (o.auth.service === 's3') headers[sha] = 'UNSIGNED-PAYLOAD';
  const skip = new Set([sha]);
  const out = await signer(o.creds, o.auth).presign({ method: o.method, protocol: 'https:', hostname: o.host, path, query, headers } as never, {
    signingDate: o.date,
    expiresIn: o.expires,
    signableHeaders: signed,
    unsignableHeaders: skip,
    unhoistableHeaders: skip,
  });
  return `${path}?${serializeQuery((out as { query: Record<string, string | string[] | null> }).query)}`;
}
