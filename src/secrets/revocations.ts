/**
 * Revoked handle ids, one per line (`<id> <exp-seconds>`), appended to a file beside the key
 * file. Every replica reads the same file (a shared volume) and re-reads it when it changes, so a
 * revocation survives restarts and reaches all replicas. Entries past their handle's expiry are
 * harmless and dropped on the next compaction.
 */
import { promises as fs, statSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const REVOCATIONS_FILE = 'revocations.txt';
const RECHECK_MS = 250;

export class RevocationList {
  private ids = new Set<string>();
  /**
   * Ids this process revoked: refused from the moment revoke() is called, not once the file write
   * lands (a misuse's on_misuse revoke must refuse the next request, which on a pipelined
   * connection is decided before any I/O completes), and never lost to a re-read of the file.
   */
  private readonly revokedHere = new Set<string>();
  private mtimeMs = -1;
  private size = -1;
  private checkedAt = 0;
  readonly file: string;

  constructor(dir: string) {
    this.file = path.join(dir, REVOCATIONS_FILE);
  }

  /** True when `id` is revoked. Re-reads the file at most every 250 ms, when it changed. */
  has(id: string, now = Date.now()): boolean {
    if (now - this.checkedAt >= RECHECK_MS) this.refresh(now);
    return this.ids.has(id) || this.revokedHere.has(id);
  }

  refresh(now = Date.now()): void {
    this.checkedAt = now;
    let st;
    try {
      st = statSync(this.file);
    } catch {
      this.ids = new Set();
      this.mtimeMs = -1;
      return;
    }
    if (st.mtimeMs === this.mtimeMs && st.size === this.size) return;
    const text = readFileSync(this.file, 'utf8');
    const next = new Set<string>();
    for (const line of text.split('\n')) {
      const id = line.trim().split(/\s+/)[0];
      if (id && /^[0-9a-f]{32}$/.test(id)) next.add(id);
    }
    this.ids = next;
    this.mtimeMs = st.mtimeMs;
    this.size = st.size;
  }

  async revoke(id: string, exp: number): Promise<void> {
    this.revokedHere.add(id);
    await fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    await fs.appendFile(this.file, `${id} ${exp}\n`, { mode: 0o600 });
    this.ids.add(id);
  }
}
