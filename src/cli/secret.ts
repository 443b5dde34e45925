/**
 * `turret secret set NAME` (value from stdin, never from argv where `ps` and shell history would
 * see it), `turret secret list` (names, sources, ages and keyed fingerprints — never values) and
 * `turret secret delete NAME`. The store is AES-256-GCM (secrets/store.ts).
 */
import { loadPolicy } from '../config/load.js';
import { NAME } from '../config/common.js';
import { fingerprint, loadKeyRing } from '../secrets/keys.js';
import { SecretValues } from '../secrets/sources.js';
import { SecretStore, storeKey } from '../secrets/store.js';
import { caDir, out, rulesDir, UsageError, type CommonOptions } from './common.js';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('value (end with Ctrl-D): ');
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  // One trailing newline is how `echo` and terminals end input, not part of the secret.
  return Buffer.concat(parts)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

function age(d: Date | null, now = Date.now()): string {
  if (!d) return '-';
  const s = Math.max(0, Math.floor((now - d.getTime()) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export async function secretCommand(action: string, name: string | undefined, o: CommonOptions): Promise<void> {
  const dir = caDir(o);
  const ring = await loadKeyRing(dir, action === 'set');
  const store = new SecretStore(dir, storeKey(ring));
  switch (action) {
    case 'set': {
      if (!name || !NAME.test(name)) throw new UsageError('turret secret set NAME: NAME is lower-case letters, digits, ".", "_" or "-"');
      const value = await readStdin();
      if (!value) throw new UsageError('no value on stdin; pipe the secret in: printf %s "$TOKEN" | turret secret set NAME');
      store.set(name, value);
      out(`stored ${name} (fingerprint ${fingerprint(ring, value)})`);
      return;
    }
    case 'delete': {
      if (!name) throw new UsageError('turret secret delete NAME');
      out(store.delete(name) ? `deleted ${name}` : `no store entry ${name}`);
      return;
    }
    case 'list': {
      const values = new SecretValues(process.env, store);
      out(['NAME', 'SOURCE', 'STATUS', 'AGE', 'FINGERPRINT', 'HOSTS'].join('\t'));
      const referenced = new Set<string>();
      let policy = null;
      try {
        policy = await loadPolicy(rulesDir(o));
      } catch {
        // No rules here: list the store alone.
      }
      for (const def of policy?.secrets.values() ?? []) {
        if (def.source.kind === 'store') referenced.add(def.source.name);
        const v = values.load(def.name, def.source);
        out(
          [
            def.name,
            values.describe(def.source),
            v ? 'loaded' : 'missing',
            age(values.changedAt(def.source)),
            v ? fingerprint(ring, v.reveal()) : '-',
            def.hosts.map((h) => h.source).join(','),
          ].join('\t'),
        );
      }
      for (const e of store.list()) {
        if (referenced.has(e.name)) continue;
        const v = store.get(e.name);
        out([`(store) ${e.name}`, `store ${e.name}`, v ? 'unused' : 'undecryptable', age(e.updated), v ? fingerprint(ring, v.reveal()) : '-', '-'].join('\t'));
      }
      return;
    }
    default:
      throw new UsageError(`unknown action "secret ${action}"; use: set NAME | list | delete NAME`);
  }
}
