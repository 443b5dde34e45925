/**
 * "Allow for DURATION" on an approval request becomes a rule entry with `until:` in
 * `<rules dir>/approvals.yaml`, so it survives restarts, shows in `turret rules explain`, and is
 * reviewed like any other rule. The entry allows the ask rule's methods for that agent and that
 * host (and port) until the chosen instant. Expired entries are dropped whenever the file is
 * written again. The file is written whole (temp file + rename), then the rules are reloaded; a
 * file the loader refuses is not left behind (the previous one is restored).
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import type { Approval } from './approvals.js';

export const APPROVALS_FILE = 'approvals.yaml';

const HEADER = `# Written by Turret when an operator chose "allow for" on an approval request (docs/console.md).
# Each entry expires at its until:; expired entries are dropped the next time this file is written.
# You may edit or delete entries; the proxy reloads this file like any other rule file.
`;

interface Entry {
  name: string;
  agents: string[];
  methods: string[];
  hosts: string[];
  until: string;
  description: string;
}

function hostEntry(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export function approvalEntry(a: Approval, until: number, methods: readonly string[]): Entry {
  return {
    name: `approval-${a.id}`,
    agents: [a.agent],
    methods: [...methods],
    hosts: [hostEntry(a.host, a.port)],
    until: new Date(until).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    description: `allowed by ${a.by ?? 'an operator'} on ${new Date().toISOString()} for approval ${a.id} (ask rule ${a.rule.id})`,
  };
}

async function readEntries(file: string, now: number): Promise<Entry[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return [];
  }
  const doc = parse(text) as { rules?: Entry[] } | null;
  return (doc?.rules ?? []).filter((e) => typeof e?.until === 'string' && Date.parse(e.until) > now);
}

/**
 * Append an entry, check that the rules still load (`validate` throws the loader's error), then
 * `reload`. A refused file is replaced by the previous one and this rejects.
 */
export async function addApprovalRule(rulesDir: string, entry: Entry, validate: () => Promise<unknown>, reload: () => Promise<void>, now = Date.now()): Promise<void> {
  const file = path.join(rulesDir, APPROVALS_FILE);
  const previous = await fs.readFile(file, 'utf8').catch(() => null);
  const entries = [...(await readEntries(file, now)), entry];
  const tmp = path.join(rulesDir, `.${APPROVALS_FILE}.${randomBytes(4).toString('hex')}.tmp`);
  await fs.writeFile(tmp, HEADER + stringify({ rules: entries }), { mode: 0o640 });
  await fs.rename(tmp, file);
  try {
    await validate();
  } catch (e) {
    if (previous === null) await fs.rm(file, { force: true });
    else await fs.writeFile(file, previous);
    throw new Error(`the rule entry was refused by the rule loader; nothing was added: ${(e as Error).message.split('\n')[0]}`);
  }
  await reload();
}
