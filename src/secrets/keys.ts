/**
 * Turret's key file (`turret.key` in the CA directory, 32 random bytes, mode 0600). Several
 * replicas that share this file (and the rules) agree on every handle and agent credential
 * without sharing any other state: handles are sealed with a key derived from it, agent
 * credentials are derived from it, and audit fingerprints are keyed by it. Subkeys are
 * separated with HKDF info strings so no two purposes ever share a key.
 */
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface KeyRing {
  handleKey: Buffer;
  agentKey: Buffer;
  fingerprintKey: Buffer;
  /** Encrypts the local secret store (store.ts) unless TURRET_STORE_KEY gives another key. */
  storeKey: Buffer;
}

export const KEY_FILE = 'turret.key';

export class KeyFileError extends Error {
  /** Bad configuration or usage: exit 2 (main.ts). */
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
  }
}

function derive(master: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), `turret:${info}:v1`, 32));
}

export function keyRingFrom(master: Buffer): KeyRing {
  return { handleKey: derive(master, 'handles'), agentKey: derive(master, 'agents'), fingerprintKey: derive(master, 'fingerprints'), storeKey: derive(master, 'store') };
}

/** Load the key file from `dir`, creating it (0600) when `create` is set and it is absent. */
export async function loadKeyRing(dir: string, create: boolean): Promise<KeyRing> {
  const file = path.join(dir, KEY_FILE);
  let raw: Buffer;
  try {
    raw = await fs.readFile(file);
  } catch {
    if (!create) throw new KeyFileError(`no key file at ${file}; run: turret ca init --dir ${dir}`);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    raw = Buffer.from(randomBytes(32).toString('base64') + '\n');
    try {
      // 'wx': never overwrite a key another process created meanwhile.
      await fs.writeFile(file, raw, { mode: 0o600, flag: 'wx' });
    } catch {
      raw = await fs.readFile(file);
    }
  }
  const master = Buffer.from(raw.toString('utf8').trim(), 'base64');
  if (master.length < 32) throw new KeyFileError(`${file} must hold at least 32 random bytes in base64`);
  return keyRingFrom(master);
}

/** The proxy password of an agent whose credential is derived (no `token:` in the rules). */
export function derivedAgentToken(ring: KeyRing, agent: string): string {
  return `tra_${createHmac('sha256', ring.agentKey).update(`agent:${agent}`).digest('base64url').slice(0, 32)}`;
}

// Every audit record of a request that injected a secret carries its fingerprint: an HMAC per
// record was ~1.6% of such a request's CPU. Kept per key ring and value (bounded; the values are
// the secrets this process already holds to inject and scrub them).
const MAX_FINGERPRINTS = 256;
const fingerprints = new WeakMap<KeyRing, Map<string, string>>();

/** Keyed fingerprint of a secret value: matches a leak to a rotation, reveals nothing. */
export function fingerprint(ring: KeyRing, value: string): string {
  let m = fingerprints.get(ring);
  if (!m) fingerprints.set(ring, (m = new Map()));
  let fp = m.get(value);
  if (fp === undefined) {
    fp = createHmac('sha256', ring.fingerprintKey).update(value).digest('hex').slice(0, 16);
    if (m.size >= MAX_FINGERPRINTS) m.clear();
    m.set(value, fp);
  }
  return fp;
}
