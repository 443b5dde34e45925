/**
 * Runs an ES module script in a child Node (under tsx) with a preload `hook` module, which worker
 * threads inherit: how the audit tests inject a failure into the log's writer thread only.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/** `hookText` is written to `dir`/hook.mjs. */
export async function runHooked(dir: string, hookText: string, script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; err: string }> {
  const hook = path.join(dir, 'hook.mjs');
  writeFileSync(hook, hookText);
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', hook, '--input-type=module', '-e', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { code, out, err };
}
