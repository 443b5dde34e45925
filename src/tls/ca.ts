/**
 * The local certificate authority Turret mints interception leaves with.
 *
 * Keys are ECDSA P-256: WebCrypto signs a P-256 certificate in well under a millisecond, where
 * node-forge (RSA only, pure-JS signing) takes ~30 ms per leaf. Measured in bench/leaf.ts;
 * see docs/architecture.md for the comparison.
 *
 * Files in the CA directory: `ca.crt` (PEM, public, 0644) and `ca.key` (PKCS#8 PEM, 0600).
 * The key is never printed and never overwritten without `force`.
 */
import { webcrypto, randomBytes, createPrivateKey, X509Certificate as NodeX509, type KeyObject } from 'node:crypto';
import { promises as fs, constants as fsc } from 'node:fs';
import path from 'node:path';
import 'reflect-metadata'; // @peculiar/x509 2.x (tsyringe) needs the Reflect polyfill loaded first
import * as x509 from '@peculiar/x509';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the DOM Crypto type is not in our lib
x509.cryptoProvider.set(webcrypto as any);

export const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface CertificateAuthority {
  certPem: string;
  cert: x509.X509Certificate;
  privateKey: webcrypto.CryptoKey;
  /** Native key object: leaves are signed with crypto.sign (see tls/der.ts). */
  keyObject: KeyObject;
  /** DER of the CA subject Name, used verbatim as the leaves' issuer. */
  subjectDer: Buffer;
  /** Subject key identifier, copied into the leaves' authority key identifier. */
  keyId: Buffer | undefined;
  /** Where it was loaded from, for messages. */
  dir: string;
}

export class CaError extends Error {
  /** Bad configuration or usage: exit 2 (main.ts). */
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'CaError';
  }
}

export function caPaths(dir: string): { cert: string; key: string } {
  return { cert: path.join(dir, 'ca.crt'), key: path.join(dir, 'ca.key') };
}

function serial(): string {
  // Positive 128-bit serial (RFC 5280 §4.1.2.2: positive, ≤ 20 octets).
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p, fsc.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** Create a new CA in `dir`. Refuses to overwrite an existing key unless `force`. */
export async function createCa(dir: string, opts: { force?: boolean; commonName?: string } = {}): Promise<CertificateAuthority> {
  const p = caPaths(dir);
  if (!opts.force && ((await exists(p.key)) || (await exists(p.cert)))) {
    throw new CaError(`a CA already exists in ${dir}; use --force to replace it (every agent must then trust the new one)`);
  }
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const keys = (await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${opts.commonName ?? 'Turret local CA'}, O=Turret`,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 5 * 365 * 86400_000),
    keys,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = toPem(pkcs8, 'PRIVATE KEY');
  // Write the key with 0600 from the first byte (mode on open), then the certificate.
  const tmpKey = `${p.key}.tmp-${process.pid}`;
  await fs.writeFile(tmpKey, keyPem, { mode: 0o600 });
  await fs.chmod(tmpKey, 0o600);
  await fs.rename(tmpKey, p.key);
  await fs.writeFile(p.cert, cert.toString('pem') + '\n', { mode: 0o644 });
  return loadCa(dir);
}

export function toPem(der: Buffer, label: string): string {
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Load the CA from `dir`. Throws CaError with a fix when it is missing or broken (fail closed). */
export async function loadCa(dir: string): Promise<CertificateAuthority> {
  const p = caPaths(dir);
  let certPem: string;
  let keyPem: string;
  try {
    certPem = await fs.readFile(p.cert, 'utf8');
    keyPem = await fs.readFile(p.key, 'utf8');
  } catch {
    throw new CaError(`no CA in ${dir} (expected ca.crt and ca.key); run: turret ca init --dir ${dir}`);
  }
  try {
    const cert = new x509.X509Certificate(certPem);
    const nodeCert = new NodeX509(certPem);
    if (!nodeCert.ca) throw new CaError(`${p.cert} is not a CA certificate`);
    const keyObj = createPrivateKey(keyPem);
    if (!nodeCert.checkPrivateKey(keyObj)) throw new CaError(`${p.key} does not match ${p.cert}`);
    if (keyObj.asymmetricKeyType !== 'ec') throw new CaError(`${p.key} must be an EC P-256 key`);
    const der = keyObj.export({ format: 'der', type: 'pkcs8' });
    const privateKey = await webcrypto.subtle.importKey('pkcs8', der, EC_ALG, false, ['sign']);
    if (new Date(nodeCert.validTo).getTime() < Date.now()) {
      throw new CaError(`the CA in ${dir} expired on ${nodeCert.validTo}; run: turret ca init --force --dir ${dir}`);
    }
    const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
    return {
      certPem: cert.toString('pem') + '\n',
      cert,
      privateKey,
      keyObject: keyObj,
      subjectDer: Buffer.from(cert.subjectName.toArrayBuffer()),
      keyId: ski ? Buffer.from(ski.keyId, 'hex') : undefined,
      dir,
    };
  } catch (e) {
    if (e instanceof CaError) throw e;
    // Do not echo parser messages: they can quote key material.
    throw new CaError(`the CA files in ${dir} cannot be read as a certificate and EC private key`);
  }
}

/** Load the CA, creating it on first use when `create` is set. */
export async function loadOrCreateCa(dir: string, create: boolean): Promise<{ ca: CertificateAuthority; created: boolean }> {
  const p = caPaths(dir);
  if (create && !(await exists(p.key)) && !(await exists(p.cert))) {
    return { ca: await createCa(dir), created: true };
  }
  return { ca: await loadCa(dir), created: false };
}

/** File mode bits of the CA key, for production checks. */
export async function caKeyMode(dir: string): Promise<number | null> {
  try {
    return (await fs.stat(caPaths(dir).key)).mode & 0o777;
  } catch {
    return null;
  }
}
