/**
 * A SigV4 verifier for local test servers: recomputes the signature of a received request with
 * the REAL key (header-signed, presigned and aws-chunked streaming bodies) independently of
 * Turret's signing code, so a server can refuse anything not signed with it.
 */
import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type http from 'node:http';

class Sha256 {
  private h;
  constructor(s?: Uint8Array | string) {
    this.h = s === undefined ? createHash('sha256') : createHmac('sha256', s);
  }
  update(d: Uint8Array | string): void {
    this.h.update(d);
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
  reset(): void {}
}

const hmac = (k: Buffer | string, s: string): Buffer => createHmac('sha256', k).update(s).digest();

/** What the verifying server concluded for each request. */
export interface Verdict {
  url: string;
  ok: boolean;
  why: string;
}

export async function verifySigV4(REAL_ID: string, REAL_KEY: string, req: http.IncomingMessage, body: Buffer): Promise<Verdict> {
  const url = new URL(req.url ?? '/', 'https://x');
  const query: Record<string, string> = {};
  url.searchParams.forEach((v, k) => (query[k] = v));
  const presigned = query['X-Amz-Signature'];
  const auth = req.headers.authorization ?? '';
  const m = /Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})/.exec(auth);
  const cred = presigned ? (query['X-Amz-Credential'] ?? '').split('/') : m ? [m[1], m[2], m[3], m[4]] : [];
  const [id, , region = '', service = ''] = cred;
  if (id !== REAL_ID) return { url: url.pathname, ok: false, why: 'wrong access key id' };
  const signer = new SignatureV4({
    credentials: { accessKeyId: REAL_ID, secretAccessKey: REAL_KEY },
    region,
    service,
    sha256: Sha256 as never,
    uriEscapePath: service !== 's3',
    applyChecksum: false,
  });
  const amzDate = presigned ? (query['X-Amz-Date'] ?? '') : String(req.headers['x-amz-date']);
  const date = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
  const signedNames = (presigned ? (query['X-Amz-SignedHeaders'] ?? '') : (m?.[5] ?? '')).split(';');
  const headers: Record<string, string> = {};
  for (const n of signedNames) headers[n] = String(req.headers[n] ?? '');
  if (presigned) {
    const q = { ...query };
    for (const k of ['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature']) delete q[k];
    const out = await signer.presign(
      {
        method: req.method ?? 'GET',
        protocol: 'https:',
        hostname: headers.host ?? '',
        path: url.pathname,
        query: q,
        headers: { ...headers, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
      } as never,
      { signingDate: date, expiresIn: Number(query['X-Amz-Expires']), unsignableHeaders: new Set(['x-amz-content-sha256']), unhoistableHeaders: new Set(['x-amz-content-sha256']) },
    );
    const ok = (out as { query: Record<string, string> }).query['X-Amz-Signature'] === presigned;
    return { url: url.pathname, ok, why: ok ? 'presigned ok' : 'presigned signature mismatch' };
  }
  const sha = req.headers['x-amz-content-sha256'];
  // Without x-amz-content-sha256 the signature covers the SHA-256 of the body received.
  const signed = await signer.sign({ method: req.method ?? 'GET', protocol: 'https:', hostname: headers.host ?? '', path: url.pathname, query, headers, body } as never, {
    signingDate: date,
    signableHeaders: new Set(signedNames),
  });
  const want = /Signature=([0-9a-f]{64})/.exec((signed as { headers: Record<string, string> }).headers.authorization ?? '')?.[1];
  if (want !== m?.[6]) return { url: url.pathname, ok: false, why: 'header signature mismatch' };
  if (sha !== 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD') return { url: url.pathname, ok: true, why: `header ok (${String(sha ?? 'hashed').slice(0, 20)})` };
  // Verify the chunk chain independently of Turret's code.
  let key = hmac(`AWS4${REAL_KEY}`, amzDate.slice(0, 8));
  for (const p of [region, service, 'aws4_request']) key = hmac(key, p);
  const scope = `${amzDate.slice(0, 8)}/${region}/${service}/aws4_request`;
  let prev = want;
  let rest = body;
  let data = Buffer.alloc(0);
  for (;;) {
    const nl = rest.indexOf('\r\n');
    const hm = /^([0-9a-f]+);chunk-signature=([0-9a-f]{64})$/.exec(rest.subarray(0, nl).toString());
    if (!hm) return { url: url.pathname, ok: false, why: 'bad chunk header' };
    const size = parseInt(hm[1] ?? '', 16);
    const chunk = rest.subarray(nl + 2, nl + 2 + size);
    const sts = ['AWS4-HMAC-SHA256-PAYLOAD', amzDate, scope, prev, createHash('sha256').update('').digest('hex'), createHash('sha256').update(chunk).digest('hex')].join('\n');
    const sig = createHmac('sha256', key).update(sts).digest('hex');
    if (sig !== hm[2]) return { url: url.pathname, ok: false, why: 'chunk signature mismatch' };
    prev = sig;
    data = Buffer.concat([data, chunk]);
    rest = rest.subarray(nl + 2 + size + 2);
    if (size === 0) break;
  }
  const ok = String(data.length) === req.headers['x-amz-decoded-content-length'];
  return { url: url.pathname, ok, why: ok ? `chunked ok ${data.length}` : 'decoded length mismatch' };
}
