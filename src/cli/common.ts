/**
 * Options and errors shared by the CLI commands. Exit codes (PRODUCT.md): 0 ok, 1 runtime
 * failure, 2 bad usage or bad configuration.
 */
import path from 'node:path';

export class UsageError extends Error {
  /** Bad configuration or usage: exit 2 (main.ts). */
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface CommonOptions {
  rules?: string;
  ca?: string;
}

export function rulesDir(o: CommonOptions): string {
  return path.resolve(o.rules ?? process.env.TURRET_RULES ?? 'rules');
}

export function caDir(o: CommonOptions): string {
  return path.resolve(o.ca ?? process.env.TURRET_CA_DIR ?? 'ca');
}

export const DEFAULT_LISTEN = '127.0.0.1:8750';

export function parseListen(s: string, flag: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s.trim());
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`${flag} must be HOST:PORT (for example ${DEFAULT_LISTEN}), got "${s}"`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function err(line: string): void {
  process.stderr.write(`${line}\n`);
}
