/**
 * Secret values from their sources. A value that cannot be loaded is absent, never empty or
 * guessed: a request that needs it is refused (secret_unavailable), which is fail-closed.
 * File sources are re-read when the file changes (rotation without restart); command sources
 * refresh in the background (command.ts); store entries are re-read when the store changes.
 */
import { readFileSync, statSync } from 'node:fs';
import type { SecretSource } from '../policy/types.js';
import { CommandValues } from './command.js';
import { Secret } from './secret.js';
import type { SecretStore } from './store.js';

interface FileCache {
  mtimeMs: number;
  size: number;
  value: string;
}

export class SecretValues {
  private readonly fileCache = new Map<string, FileCache>();
  private readonly commands: CommandValues;

  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly store: SecretStore | null = null,
  ) {
    this.commands = new CommandValues(env);
  }

  /**
   * Current value of a source, or null when it is missing or empty. Never throws: a source that
   * fails (a store file with a malformed entry, a bug) is a missing value, refused where needed
   * (secret_unavailable). It is read while building the scrubber, whose callers sit in error
   * handlers: a throw here ended the process (test/integration/crash-secret-source.test.ts).
   */
  load(name: string, src: SecretSource): Secret | null {
    try {
      return this.read(name, src);
    } catch {
      return null;
    }
  }

  private read(name: string, src: SecretSource): Secret | null {
    switch (src.kind) {
      case 'env': {
        const v = this.env[src.name];
        return v ? new Secret(name, v) : null;
      }
      case 'file': {
        try {
          const st = statSync(src.path);
          const hit = this.fileCache.get(src.path);
          if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.value ? new Secret(name, hit.value) : null;
          // One trailing newline is an editor artefact, not part of the secret.
          const value = readFileSync(src.path, 'utf8').replace(/\r?\n$/, '');
          this.fileCache.set(src.path, { mtimeMs: st.mtimeMs, size: st.size, value });
          return value ? new Secret(name, value) : null;
        } catch {
          return null;
        }
      }
      case 'command': {
        const v = this.commands.load(src);
        return v ? new Secret(name, v) : null;
      }
      case 'store':
        return this.store?.get(src.name, name) ?? null;
    }
  }

  /** When the current value was last changed, where the source can tell (key-age tracking). */
  changedAt(src: SecretSource): Date | null {
    switch (src.kind) {
      case 'file':
        try {
          return statSync(src.path).mtime;
        } catch {
          return null;
        }
      case 'store':
        return this.store?.info(src.name)?.updated ?? null;
      case 'env':
      case 'command':
        return null;
    }
  }

  describe(src: SecretSource): string {
    switch (src.kind) {
      case 'env':
        return `env ${src.name}`;
      case 'file':
        return `file ${src.path}`;
      case 'command':
        return `command ${src.argv[0] ?? ''}`;
      case 'store':
        return `store ${src.name}`;
    }
  }
}
