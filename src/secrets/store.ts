/**
 * The encrypted local secret store: `secrets.store.json` beside the key file. Each entry is
 * AES-256-GCM with a fresh 96-bit IV and the entry name as additional data, so an entry cannot
 * be moved to another name, and a changed byte fails the tag. The key is TURRET_STORE_KEY
 * (base64, 32 bytes) when set, otherwise a subkey of the key file (keys.ts). Only names and
 * timestamps are stored in clear: `turret secret list` shows ages for rotation tracking.
 *
 * Writes go to a temp file renamed into place (atomic on POSIX), so a reader never sees half a
 * file. Readers re-read when mtime or size changes.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { KeyRing } from './keys.js';
import { Secret } from './secret.js';

export const STORE_FILE = 'secrets.store.json';
export const STORE_KEY_ENV = 'TURRET_STORE_KEY';

interface Entry {
  iv: string;
  ct: string;
  tag: string;
  created: string;
  updated: string;
}

interface StoreFile {
  version: 1;
  entries: Record<string, Entry>;
}

export interface StoreEntryInfo {
  name: string;
  created: Date;
  updated: Date;
}

export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

export function storeKey(ring: KeyRing, env: NodeJS.ProcessEnv = process.env): Buffer {
  const fromEnv = env[STORE_KEY_ENV];
  if (fromEnv) {
    const k = Buffer.from(fromEnv.trim(), 'base64');
    if (k.length !== 32) throw new StoreError(`${STORE_KEY_ENV} must be 32 bytes in base64`);
    return k;
  }
  return ring.storeKey;
}

export class SecretStore {
  readonly file: string;
  private cache: { mtimeMs: number; size: number; data: StoreFile } | null = null;
  /** Plaintext per entry object ('' when it does not decrypt); the name is fixed by the lookup. */
  private readonly opened = new WeakMap<Entry, string>();

  constructor(
    dir: string,
    private readonly key: Buffer,
  ) {
    this.file = path.join(dir, STORE_FILE);
  }

  private read(): StoreFile {
    let st;
    try {
      st = statSync(this.file);
    } catch {
      return { version: 1, entries: {} };
    }
    if (this.cache && this.cache.mtimeMs === st.mtimeMs && this.cache.size === st.size) return this.cache.data;
    const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as StoreFile;
    if (parsed?.version !== 1 || typeof parsed.entries !== 'object') throw new StoreError(`${this.file} is not a Turret secret store`);
    this.cache = { mtimeMs: st.mtimeMs, size: st.size, data: parsed };
    return parsed;
  }

  private write(data: StoreFile): void {
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(data, null, 1)}\n`, { mode: 0o600 });
    renameSync(tmp, this.file);
    this.cache = null;
  }

  /** The value of an entry, or null when absent or when it does not decrypt (wrong key, tampered). */
  get(name: string, secretName = name): Secret | null {
    let e: Entry | undefined;
    try {
      e = this.read().entries[name];
    } catch {
      return null;
    }
    // A hand-edited or damaged file: an entry that is not an object does not decrypt.
    if (typeof e !== 'object' || e === null) return null;
    // An entry object lives as long as the parsed file it came from (a changed file is parsed
    // anew), so its plaintext is kept with it: a request that injects a store secret does not
    // pay an AES-GCM decrypt each time.
    let v = this.opened.get(e);
    if (v === undefined) {
      v = this.open(name, e);
      this.opened.set(e, v);
    }
    return v ? new Secret(secretName, v) : null;
  }

  private open(name: string, e: Entry): string {
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, Buffer.from(e.iv, 'base64'));
      d.setAAD(Buffer.from(`turret-store:${name}`));
      d.setAuthTag(Buffer.from(e.tag, 'base64'));
      return Buffer.concat([d.update(Buffer.from(e.ct, 'base64')), d.final()]).toString('utf8');
    } catch {
      return '';
    }
  }

  set(name: string, value: string, now = new Date()): void {
    if (!value) throw new StoreError('refusing to store an empty value');
    const data = this.read();
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(`turret-store:${name}`));
    const ct = Buffer.concat([c.update(value, 'utf8'), c.final()]);
    const prev = data.entries[name];
    data.entries[name] = {
      iv: iv.toString('base64'),
      ct: ct.toString('base64'),
      tag: c.getAuthTag().toString('base64'),
      created: prev?.created ?? now.toISOString(),
      updated: now.toISOString(),
    };
    this.write(data);
  }

  delete(name: string): boolean {
    const data = this.read();
    if (!data.entries[name]) return false;
    delete data.entries[name];
    this.write(data);
    return true;
  }

  list(): StoreEntryInfo[] {
    return Object.entries(this.read().entries)
      .map(([name, e]) => ({ name, created: new Date(e.created), updated: new Date(e.updated) }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  info(name: string): StoreEntryInfo | null {
    try {
      return this.list().find((e) => e.name === name) ?? null;
    } catch {
      return null;
    }
  }
}
