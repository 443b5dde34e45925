/** Runs the real curl binary with an explicit, clean environment. */
import { spawn } from 'node:child_process';
import { cleanEnv } from './turret.js';

export interface CurlResult {
  code: number;
  status: number;
  headers: Record<string, string>;
  body: string;
  stderr: string;
  raw: string;
}

export function curl(args: string[], env: Record<string, string> = {}): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    // -sS: quiet but show errors; -i: include response headers; --max-time bounds every call.
    const p = spawn('curl', ['-sS', '-i', '--max-time', '20', '--noproxy', '', ...args], { env: cleanEnv(env) });
    let out = '';
    let err = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString('latin1')));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve(parseCurlOutput(code ?? -1, out, err)));
  });
}

/** Parses `curl -i` output. With CONNECT, curl prints the proxy's "200 Connection established" block first; the last response is kept. */
export function parseCurlOutput(code: number, out: string, err: string): CurlResult {
  const blocks = out.split(/\r\n\r\n/);
  let i = 0;
  while (i < blocks.length - 1 && /^HTTP\/[\d.]+ (1\d\d|200 Connection established)/i.test(blocks[i] ?? '')) i++;
  const head = blocks[i] ?? '';
  const lines = head.split('\r\n');
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    if (c > 0) headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
  }
  return { code, status, headers, body: blocks.slice(i + 1).join('\r\n\r\n'), stderr: err, raw: out };
}
