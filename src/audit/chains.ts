/**
 * Several chains at once: `turret start --workers N` writes one hash chain per worker
 * (audit.w1.jsonl, audit.w2.jsonl …, each rotating to .1, .2 … on its own). Given the path an
 * operator knows (audit.jsonl), this finds every worker's file beside it and verifies each chain
 * on its own: files are grouped by chain (the name without its rotation suffix), so a rotated
 * file joins its own chain and never another worker's.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { verifyAuditFiles, type VerifyResult } from './verify.js';

/** audit.w2.jsonl.3 → audit.w2.jsonl: the chain a file belongs to. */
export function chainOf(file: string): string {
  return file.replace(/\.\d+$/, '');
}

/**
 * The given files plus, for each, the current file of every worker chain beside it
 * (audit.wK.jsonl). A name that does not exist but has worker files named the set, not a file.
 */
export function withWorkerChains(files: readonly string[]): string[] {
  const out = new Set<string>();
  for (const f of files) {
    const found = workerFiles(f);
    if (found.length === 0 || existsSync(f)) out.add(f);
    for (const w of found) out.add(w);
  }
  return [...out];
}

function workerFiles(f: string): string[] {
  const base = chainOf(f);
  const ext = path.extname(base);
  const stem = path.basename(base, ext);
  if (/\.w\d+$/.test(stem)) return [];
  let names: string[];
  try {
    names = readdirSync(path.dirname(base));
  } catch {
    return [];
  }
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^${esc(stem)}\\.w\\d+${esc(ext)}$`);
  return names
    .filter((n) => re.test(n))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    .map((n) => path.join(path.dirname(base), n));
}

export interface ChainResult extends VerifyResult {
  chain: string;
}

export async function verifyAuditChains(files: readonly string[]): Promise<ChainResult[]> {
  const groups = new Map<string, string[]>();
  for (const f of withWorkerChains(files)) {
    const k = chainOf(f);
    groups.set(k, [...(groups.get(k) ?? []), f]);
  }
  const out: ChainResult[] = [];
  for (const [chain, members] of groups) out.push({ chain, ...(await verifyAuditFiles(members)) });
  return out;
}
