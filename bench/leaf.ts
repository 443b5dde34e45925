/**
 * Leaf minting, the hot path of every new intercepted host. Compares, in one run:
 *   turret   — hand-built TBSCertificate (src/tls/der.ts) signed with native crypto.sign, P-256
 *   peculiar — @peculiar/x509 generator with WebCrypto, P-256
 *   forge    — node-forge RSA-2048 with its pure-JS signer (the design card's default)
 * plus the SecureContext creation every path pays. Reports medians and ratios to turret's path.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import forge from 'node-forge';
import { createCa } from '../src/tls/ca.js';
import { createLeafKey, LeafCache, mintLeafPem } from '../src/tls/leaf.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function time(n: number, fn: (i: number) => unknown): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    xs.push(performance.now() - t);
  }
  return median(xs);
}

export async function benchLeaf(): Promise<Record<string, number>> {
  const ca = await createCa(mkdtempSync(path.join(tmpdir(), 'turret-bench-')), { force: true });
  const key = createLeafKey();
  const turret = await time(300, (i) => mintLeafPem(ca, `h${i}.bench.test`, key.spkiDer));

  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const pair = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const peculiar = await time(100, (i) =>
    x509.X509CertificateGenerator.create({
      serialNumber: '01',
      subject: `CN=p${i}.bench.test`,
      issuer: ca.cert.subject,
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 86400_000),
      signingKey: ca.privateKey as never,
      publicKey: pair.publicKey as never,
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: `p${i}.bench.test` }])],
    }),
  );

  const caKeys = forge.pki.rsa.generateKeyPair(2048);
  const leafKeys = forge.pki.rsa.generateKeyPair(2048);
  const forgeMs = await time(20, (i) => {
    const c = forge.pki.createCertificate();
    c.publicKey = leafKeys.publicKey;
    c.serialNumber = '01';
    c.validity.notBefore = new Date();
    c.validity.notAfter = new Date(Date.now() + 86400_000);
    c.setSubject([{ name: 'commonName', value: `f${i}.bench.test` }]);
    c.setIssuer([{ name: 'commonName', value: 'bench ca' }]);
    c.setExtensions([{ name: 'subjectAltName', altNames: [{ type: 2, value: `f${i}.bench.test` }] }]);
    c.sign(caKeys.privateKey, forge.md.sha256.create());
    return forge.pki.certificateToPem(c);
  });

  const pem = mintLeafPem(ca, 'ctx.bench.test', key.spkiDer);
  const context = await time(200, () => tls.createSecureContext({ key: key.pem, cert: pem + ca.certPem }));
  const cache = new LeafCache(ca);
  await cache.contextFor('warm.bench.test');
  const newHost = await time(300, (i) => cache.contextFor(`n${i}.bench.test`));
  const cached = await time(1000, () => cache.contextFor('warm.bench.test'));
  return {
    'turret mint (ms, median)': turret,
    '@peculiar/x509 mint (ms, median)': peculiar,
    'node-forge RSA mint (ms, median)': forgeMs,
    'SecureContext creation (ms, median)': context,
    'new host end to end: mint + context (ms, median)': newHost,
    'cached host (ms, median)': cached,
    'ratio @peculiar/turret': peculiar / turret,
    'ratio forge/turret': forgeMs / turret,
  };
}
