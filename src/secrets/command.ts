/**
 * Command sources: a program (argv, no shell) whose stdout is the secret — `pass show x`,
 * `vault kv get -field=token …`, `op read …`. Fail closed: a non-zero exit, a timeout, an
 * empty output or output on stderr only means no value, and the request that needs it is
 * refused (secret_unavailable). Nothing the command prints is ever logged.
 *
 * The first load runs synchronously (bounded by the timeout) because the request path asks for
 * values synchronously; afterwards the value is refreshed in the background every `refreshMs`,
 * and a failed refresh drops the value instead of serving a stale one (fail closed).
 * Rejected: running the command per request (slow, and a flaky command then flaps the proxy).
 */
import { execFile, execFileSync } from 'node:child_process';
import type { SecretSource } from '../policy/types.js';

type CommandSource = Extract<SecretSource, { kind: 'command' }>;

interface Entry {
  value: string | null;
  loadedAt: number;
  refreshing: boolean;
}

const MAX_OUTPUT = 64 * 1024;

function clean(out: string): string | null {
  const v = out.replace(/\r?\n$/, '');
  return v.length > 0 ? v : null;
}

export class CommandValues {
  private readonly cache = new Map<string, Entry>();

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  private key(src: CommandSource): string {
    return JSON.stringify(src.argv);
  }

  load(src: CommandSource, now = Date.now()): string | null {
    const k = this.key(src);
    const hit = this.cache.get(k);
    if (!hit) {
      const value = this.runSync(src);
      this.cache.set(k, { value, loadedAt: now, refreshing: false });
      return value;
    }
    if (now - hit.loadedAt >= src.refreshMs && !hit.refreshing) {
      hit.refreshing = true;
      this.runAsync(src, (value) => {
        this.cache.set(k, { value, loadedAt: Date.now(), refreshing: false });
      });
    }
    return hit.value;
  }

  private runSync(src: CommandSource): string | null {
    try {
      const out = execFileSync(src.argv[0] ?? '', src.argv.slice(1), {
        timeout: src.timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: MAX_OUTPUT,
        stdio: ['ignore', 'pipe', 'ignore'],
        env: this.env,
        encoding: 'utf8',
      });
      return clean(out);
    } catch {
      return null;
    }
  }

  private runAsync(src: CommandSource, done: (v: string | null) => void): void {
    try {
      const child = execFile(
        src.argv[0] ?? '',
        src.argv.slice(1),
        { timeout: src.timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT, env: this.env, encoding: 'utf8' },
        (err, stdout) => done(err ? null : clean(stdout)),
      );
      child.stdin?.end();
    } catch {
      done(null);
    }
  }
}
