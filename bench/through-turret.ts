/**
 * What the proxy benchmarks (scrub, outbound) ask of a turret they started: curl through it as
 * the agent `bench`, trusting its CA, body to /dev/null; and the process's peak RSS.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { cleanEnv, type TurretProc } from '../test/helpers/turret.js';

/** Peak resident set of the turret process (VmHWM), MB. */
export function peakRssMb(t: TurretProc): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${t.proc.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
}

/** curl `args` through `t` as bench:`token`; resolves with its exit code and the numbers `writeOut` (-w) printed. */
export function curlThrough(t: TurretProc, token: string, writeOut: string, args: string[]): Promise<{ code: number | null; values: number[] }> {
  const proxy = ['-sS', '--noproxy', '', '-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `bench:${token}`, '--cacert', path.join(t.caDir, 'ca.crt')];
  return new Promise((resolve, reject) => {
    const p = spawn('curl', [...proxy, '-o', '/dev/null', '-w', writeOut, ...args], { env: cleanEnv() });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, values: out.trim().split(' ').map(Number) }));
  });
}
