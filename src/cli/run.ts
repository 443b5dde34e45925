/**
 * `turret run --agent A [--ttl 1h] -- CMD ARGS`: run a command with the agent's environment
 * (env.ts) and handles issued for this run only. When the command exits — or this process is
 * told to stop — every handle issued for the run is revoked, so nothing the command left behind
 * (a config file, a shell history, a child that lives on) can use them afterwards. The command's
 * exit code is returned (128 + signal number when it was killed by a signal, like a shell).
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { RevocationList } from '../secrets/revocations.js';
import { agentEnvironment, type EnvOptions } from './env.js';
import { err, UsageError } from './common.js';

export interface RunOptions extends EnvOptions {
  '--'?: string[];
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export async function runCommand(o: RunOptions): Promise<number> {
  const argv = o['--'] ?? [];
  if (argv.length === 0 || !argv[0]) throw new UsageError('turret run needs a command after "--": turret run --agent A -- CMD ARGS');
  const { env, issued, keyDir } = await agentEnvironment({ ...o, ttl: o.ttl ?? '1h' }, 'run');
  const revocations = new RevocationList(keyDir);
  const revokeAll = async (): Promise<void> => {
    for (const c of issued) await revocations.revoke(c.id, c.exp);
  };
  const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit', env: { ...process.env, ...env } });
  const handlers = FORWARDED.map((sig) => {
    const h = (): void => {
      child.kill(sig);
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  const code = await new Promise<number>((resolve) => {
    child.on('error', (e: Error & { code?: string }) => {
      err(`turret run: cannot start ${argv[0]}: ${e.code ?? 'error'}`);
      resolve(127);
    });
    child.on('exit', (c, sig) => resolve(c ?? 128 + (sig ? (constants.signals[sig] ?? 0) : 0)));
  });
  for (const [sig, h] of handlers) process.off(sig, h);
  await revokeAll();
  return code;
}
