/**
 * Files `turret env` / `turret run` give clients, all in one directory, `<ca dir>/client/`, so an
 * isolated `turret run` binds that one directory (read-only) into its sandbox (docs/secrets.md):
 *
 * - `bundle.pem`: Turret's CA, the CAs of `settings.upstream_ca_file` and the system roots. Every
 *   trust variable points here, so an intercepted host (Turret's leaf) and a passthrough host
 *   (the real upstream's chain, verified by the client itself) both verify.
 * - `wgetrc`: `ca_certificate = bundle.pem` (wget with GnuTLS ignores SSL_CERT_FILE).
 * - `truststore.p12`: a Java trust store — the JDK's own cacerts plus Turret's CA — made with
 *   keytool when one is installed (JAVA_TOOL_OPTIONS points at it).
 *
 * The Node preload is not copied here: it is Turret's own dist/client/preload.js, which imports
 * Turret's undici (an isolated run leaves the installation readable; only the CA directory, the
 * rules and the audit log are hidden, and the files above are shown by their absolute paths).
 *
 * Files are rewritten only when their content changes, each through a temporary file and a
 * rename, so concurrent runs never see half a file. ca.key stays out of this directory.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { caPaths } from '../tls/ca.js';

const run = promisify(execFile);

export interface ClientFiles {
  dir: string;
  bundle: string;
  wgetrc: string;
  /** null when no keytool is installed (no Java to configure) or it failed. */
  truststore: string | null;
  /** Turret's compiled Node preload; null when it is not built (a warning says so). */
  preload: string | null;
  /** Problems worth telling the user about (stderr), never secrets. */
  warnings: string[];
}

/** The trust store password: public by design (a trust store holds only public certificates). */
export const TRUSTSTORE_PASSWORD = 'changeit';

/** Distribution bundles of the system roots, first found wins (Debian/Ubuntu/Alpine, RHEL, others). */
const SYSTEM_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem',
  '/etc/ssl/cert.pem',
];

export function clientDir(caDir: string): string {
  return path.join(caDir, 'client');
}

/** Writes `text` to `file` unless it already holds exactly that; atomic via rename. */
async function writeIfChanged(file: string, data: string | Buffer): Promise<void> {
  const want = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const have = await fs.readFile(file).catch(() => null);
  if (have?.equals(want)) return;
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await fs.writeFile(tmp, want, { mode: 0o644 });
  await fs.rename(tmp, file);
}

async function systemRoots(): Promise<string> {
  for (const f of SYSTEM_BUNDLES) {
    const text = await fs.readFile(f, 'utf8').catch(() => null);
    if (text?.includes('-----BEGIN CERTIFICATE-----')) return text;
  }
  // No distribution bundle: Node's built-in Mozilla roots.
  return rootCertificates.join('\n');
}

async function buildBundle(caDir: string, extraCaFile: string | null, warnings: string[]): Promise<string> {
  const parts = [`# Turret's CA (${caPaths(caDir).cert})`, (await fs.readFile(caPaths(caDir).cert, 'utf8')).trim()];
  if (extraCaFile) {
    const extra = await fs.readFile(path.resolve(extraCaFile), 'utf8').catch(() => null);
    if (extra?.includes('-----BEGIN CERTIFICATE-----')) parts.push(`# settings.upstream_ca_file (${extraCaFile})`, extra.trim());
    else warnings.push(`settings.upstream_ca_file ${extraCaFile} is not readable PEM; the client bundle leaves it out`);
  }
  parts.push('# system roots', (await systemRoots()).trim());
  return `${parts.join('\n')}\n`;
}

function findKeytool(): string | null {
  const dirs = [...(process.env.JAVA_HOME ? [path.join(process.env.JAVA_HOME, 'bin')] : []), ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean)];
  for (const d of dirs) {
    const p = path.join(d, 'keytool');
    if (existsSync(p)) return p;
  }
  return null;
}

/** The JDK's own cacerts (the Java system roots), beside the keytool found. */
function jdkCacerts(keytool: string): string | null {
  const home = path.dirname(path.dirname(realpathSync(keytool)));
  for (const p of [path.join(home, 'lib/security/cacerts'), path.join(home, 'jre/lib/security/cacerts'), '/etc/ssl/certs/java/cacerts']) {
    if (existsSync(p)) return p;
  }
  return null;
}

/**
 * A copy of the JDK's cacerts with Turret's CA (and the upstream CA file) imported. keytool costs
 * a JVM start per call, so the store is rebuilt only when one of its inputs changed (a stamp file
 * holds their hash).
 */
async function buildTruststore(dir: string, caDir: string, extraCaFile: string | null, warnings: string[]): Promise<string | null> {
  const keytool = findKeytool();
  if (!keytool) return null;
  const store = path.join(dir, 'truststore.p12');
  const cacerts = jdkCacerts(keytool);
  const imports: Array<[string, string]> = [['turret-ca', caPaths(caDir).cert]];
  if (extraCaFile && existsSync(extraCaFile)) imports.push(['turret-upstream-ca', path.resolve(extraCaFile)]);
  const h = createHash('sha256');
  if (cacerts) h.update(await fs.readFile(cacerts));
  for (const [, f] of imports) h.update(await fs.readFile(f));
  const stamp = h.digest('hex');
  const stampFile = path.join(dir, 'truststore.stamp');
  if (existsSync(store) && (await fs.readFile(stampFile, 'utf8').catch(() => '')) === stamp) return store;
  const tmp = `${store}.${process.pid}.${Date.now()}.tmp`;
  try {
    if (cacerts) {
      // Convert (JKS or PKCS12 alike) into a fresh PKCS12 store with the known password.
      await run(
        keytool,
        [
          '-importkeystore',
          '-noprompt',
          '-srckeystore',
          cacerts,
          '-srcstorepass',
          TRUSTSTORE_PASSWORD,
          '-destkeystore',
          tmp,
          '-deststoretype',
          'PKCS12',
          '-deststorepass',
          TRUSTSTORE_PASSWORD,
        ],
        { timeout: 60_000 },
      );
    }
    for (const [alias, file] of imports) {
      await run(
        keytool,
        ['-importcert', '-noprompt', '-trustcacerts', '-alias', alias, '-file', file, '-keystore', tmp, '-storetype', 'PKCS12', '-storepass', TRUSTSTORE_PASSWORD],
        { timeout: 60_000 },
      );
    }
    await fs.chmod(tmp, 0o644);
    await fs.rename(tmp, store);
    await writeIfChanged(stampFile, stamp);
    return store;
  } catch (e) {
    await fs.rm(tmp, { force: true });
    warnings.push(
      `keytool (${keytool}) could not build the Java trust store, Java clients are not configured: ${((e as { stderr?: string }).stderr || (e as Error).message).trim().split('\n')[0]}`,
    );
    return null;
  }
}

/** The compiled preload: beside this file's build output (dist/client/), or dist/ when run from src/. */
function preloadSource(): string | null {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const p of [path.join(here, '../client/preload.js'), path.join(here, '../../dist/client/preload.js')]) {
    if (existsSync(p)) return p;
  }
  return null;
}

export async function ensureClientFiles(caDir: string, extraCaFile: string | null): Promise<ClientFiles> {
  const dir = clientDir(caDir);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  const warnings: string[] = [];
  const bundle = path.join(dir, 'bundle.pem');
  await writeIfChanged(bundle, await buildBundle(caDir, extraCaFile, warnings));
  const wgetrc = path.join(dir, 'wgetrc');
  // wget's own syntax: no quoting; a path with spaces is taken as is up to the end of the line.
  await writeIfChanged(wgetrc, `# Written by turret env: trust Turret's CA and the system roots.\nca_certificate = ${bundle}\n`);
  const truststore = await buildTruststore(dir, caDir, extraCaFile, warnings);
  const preload = preloadSource();
  if (!preload) warnings.push('the Node preload is not built (npm run build); NODE_OPTIONS is left alone');
  return { dir, bundle, wgetrc, truststore, preload, warnings };
}
