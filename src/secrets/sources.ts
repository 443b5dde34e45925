/**
 * Secret values from their sources. A value that cannot be loaded is absent, never empty or
 * guessed: a request that needs it is refused (secret_unavailable), which is fail-closed.
 * File sources are re-read when the file changes (rotation without restart).
 */
import { readFileSync, statSync } from 'node:fs';
import type { SecretSource } from '../policy/types.js';
import { Secret } from './secret.js';

interface FileCache {
  mtimeMs: number;
  value: string;
}

export class SecretValues {
  private readonly fileCache = new Map<string, FileCache>();

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  /** Current value of a source, or null when it is missing or empty. */
  load(name: string, src: SecretSource): Secret | null {
    switch (src.kind) {
      case 'env': {
        const v = this.env[src.name];
        return v ? new Secret(name, v) : null;
      }
      case 'file': {
        try {
          const st = statSync(src.path);
          const hit = this.fileCache.get(src.path);
          if (hit && hit.mtimeMs === st.mtimeMs) return hit.value ? new Secret(name, hit.value) : null;
          // One trailing newline is an editor artefact, not part of the secret.
          const value = readFileSync(src.path, 'utf8').replace(/\r?\n$/, '');
          this.fileCache.set(src.path, { mtimeMs: st.mtimeMs, value });
          return value ? new Secret(name, value) : null;
        } catch {
          return null;
        }
      }
    }
  }

  describe(src: SecretSource): string {
    switch (src.kind) {
      case 'env':
        return `env ${src.name}`;
      case 'file':
        return `file ${src.path}`;
    }
  }
}
