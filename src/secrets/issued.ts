/**
 * The issuance log: one JSON line per handle issued (`handles.jsonl` beside the key file), with
 * the handle's id, agent, secret, times and what issued it — never the handle itself, which is
 * a bearer credential. `turret handle list` reads it; `turret handle revoke --agent A` revokes
 * every live handle it lists for A. Handles stay valid without it (they are self-contained);
 * the log only makes them visible and revocable in bulk.
 */
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import type { HandleClaims } from './handles.js';

export const ISSUED_FILE = 'handles.jsonl';

export interface IssuedRecord extends HandleClaims {
  by: string;
}

export function issuedPath(dir: string): string {
  return path.join(dir, ISSUED_FILE);
}

export async function recordIssued(dir: string, claims: HandleClaims, by: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const rec: IssuedRecord = { id: claims.id, agent: claims.agent, secret: claims.secret, iat: claims.iat, exp: claims.exp, by };
  await fs.appendFile(issuedPath(dir), `${JSON.stringify(rec)}\n`, { mode: 0o600 });
}

export function readIssued(dir: string): IssuedRecord[] {
  let text: string;
  try {
    text = readFileSync(issuedPath(dir), 'utf8');
  } catch {
    return [];
  }
  const out: IssuedRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as IssuedRecord;
      if (typeof r.id === 'string' && typeof r.agent === 'string' && typeof r.secret === 'string' && typeof r.exp === 'number') out.push(r);
    } catch {
      // A torn last line (crash mid-append) is skipped, not fatal.
    }
  }
  return out;
}
