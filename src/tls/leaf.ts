/**
 * Leaf certificates for intercepted hosts, minted by the local CA and cached as ready
 * SecureContexts (one per host, like mockttp). One P-256 leaf key is generated per process and
 * reused for every host: key generation is the expensive part, and a per-host key buys nothing
 * when the same process holds all of them. Leaves live 7 days and are re-minted a day before
 * they expire. Concurrent first requests for one host share a single mint.
 */
import { randomBytes, generateKeyPairSync, sign } from 'node:crypto';
import tls from 'node:tls';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { toPem, type CertificateAuthority } from './ca.js';
import { OID, bitString, explicit, extension, oid, seq, set, time, tlv, uint, utf8 } from './der.js';

const LEAF_LIFETIME_MS = 7 * 86400_000;
const REFRESH_BEFORE_MS = 86400_000;

interface Entry {
  context: tls.SecureContext;
  notAfter: number;
}

export interface LeafCacheStats {
  hits: number;
  mints: number;
  size: number;
}

export class LeafCache {
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<tls.SecureContext>>();
  private leafKey: LeafKey | null = null;
  readonly stats: LeafCacheStats = { hits: 0, mints: 0, size: 0 };

  constructor(
    private readonly ca: CertificateAuthority,
    private readonly maxEntries = 10_000,
    /** Called per lookup; for a mint with the seconds it took (mint + SecureContext). */
    private readonly onEvent?: (result: 'hit' | 'mint', seconds?: number) => void,
  ) {}

  /** SecureContext for `host` (a canonical host name or IP literal). */
  async contextFor(host: string): Promise<tls.SecureContext> {
    const now = Date.now();
    const hit = this.entries.get(host);
    if (hit && hit.notAfter - REFRESH_BEFORE_MS > now) {
      // LRU: move to the back.
      this.entries.delete(host);
      this.entries.set(host, hit);
      this.stats.hits++;
      this.onEvent?.('hit');
      return hit.context;
    }
    const inflight = this.pending.get(host);
    if (inflight) return inflight;
    const p = this.mint(host).finally(() => this.pending.delete(host));
    this.pending.set(host, p);
    return p;
  }

  private keys(): LeafKey {
    this.leafKey ??= createLeafKey();
    return this.leafKey;
  }

  private async mint(host: string): Promise<tls.SecureContext> {
    const started = process.hrtime.bigint();
    const key = this.keys();
    const certPem = mintLeafPem(this.ca, host, key.spkiDer);
    const context = tls.createSecureContext({ key: key.pem, cert: certPem + this.ca.certPem });
    this.entries.set(host, { context, notAfter: Date.now() + LEAF_LIFETIME_MS });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    this.stats.mints++;
    this.stats.size = this.entries.size;
    this.onEvent?.('mint', Number(process.hrtime.bigint() - started) / 1e9);
    return context;
  }
}

export interface LeafKey {
  pem: string;
  spkiDer: Buffer;
}

export function createLeafKey(): LeafKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    spkiDer: publicKey.export({ format: 'der', type: 'spki' }),
  };
}

/** Mint one leaf for `host` (canonical name or IP literal) signed by the CA; returns PEM. */
export function mintLeafPem(ca: CertificateAuthority, host: string, spkiDer: Buffer): string {
  const now = Date.now();
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const ipFamily = isIP(host);
  // GeneralName: dNSName [2] IA5String, or iPAddress [7] OCTET STRING (RFC 5280 §4.2.1.6).
  const san = ipFamily === 0 ? tlv(0x82, Buffer.from(host, 'ascii')) : tlv(0x87, ipBytes(host, ipFamily));
  const sigAlg = seq(oid(OID.ecdsaWithSha256));
  const exts = [
    extension(OID.basicConstraints, true, seq()),
    extension(OID.keyUsage, true, tlv(0x03, Buffer.from([7, 0x80]))), // digitalSignature
    extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
    extension(OID.subjectAltName, false, seq(san)),
  ];
  if (ca.keyId) exts.push(extension(OID.authorityKeyId, false, seq(tlv(0x80, ca.keyId))));
  const tbs = seq(
    explicit(0, tlv(0x02, Buffer.from([2]))),
    uint(serial),
    sigAlg,
    ca.subjectDer,
    seq(time(new Date(now - 3600_000)), time(new Date(now + LEAF_LIFETIME_MS))),
    // CN is informational (clients match the SAN); RFC 5280 caps it at 64 characters.
    seq(set(seq(oid(OID.commonName), utf8(host.slice(0, 64))))),
    spkiDer,
    explicit(3, seq(...exts)),
  );
  const signature = sign('sha256', tbs, ca.keyObject); // DER-encoded ECDSA-Sig-Value
  return toPem(seq(tbs, sigAlg, bitString(signature)), 'CERTIFICATE');
}

function ipBytes(ip: string, family: number): Buffer {
  const bytes = ipaddr.parse(ip).toByteArray();
  if (bytes.length !== (family === 4 ? 4 : 16)) throw new Error('unexpected IP literal form');
  return Buffer.from(bytes);
}
