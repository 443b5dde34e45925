/**
 * `npm run bench -- sandbox`: what the `turret run` bridge costs. The same client (bench/
 * sandbox-client.mjs) runs (1) outside, straight to Turret's proxy port; (2) inside `turret run`
 * through HTTPS_PROXY over the bridge; (3) inside with the proxy ignored, dialling https://NAME/ on
 * 443 (stub resolver → bridge → Turret's transparent pipeline). Each does 2000 keep-alive requests
 * of a small response (latency) and one 32 MB download (throughput). Root only (uses port 443 on a
 * loopback address of its own); loopback only.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeRules } from '../test/helpers/rules.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = path.join(ROOT, 'dist/main.js');
const FIX = path.join(ROOT, 'test/fixtures');
const CLIENT = path.join(ROOT, 'bench/sandbox-client.mjs');
const ADDR = '127.77.0.9';
const N = Number(process.env.BENCH_N ?? 2000);
const BIG = 32 * 1024 * 1024;

function run(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

export async function benchSandbox(): Promise<Record<string, number>> {
  const chunk = Buffer.alloc(1024 * 1024, 'a');
  const server = https.createServer({ key: readFileSync(path.join(FIX, 'upstream.key')), cert: readFileSync(path.join(FIX, 'upstream.crt')) }, (req, res) => {
    if (req.url?.startsWith('/big')) {
      const n = Number(req.url.split('?')[1]);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
      let left = n;
      const pump = (): void => {
        while (left > 0) {
          const c = chunk.subarray(0, Math.min(chunk.length, left));
          left -= c.length;
          if (!res.write(c)) return void res.once('drain', pump);
        }
        res.end();
      };
      return pump();
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(443, ADDR, () => r()));
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-sbx-'));
  const work = path.join(dir, 'work');
  mkdirSync(work);
  chmodSync(work, 0o777);
  chmodSync(dir, 0o755);
  writeRules(path.join(dir, 'rules'), {
    'r.yaml': {
      agents: ['bench'],
      rules: [{ name: 'b', methods: ['read'], hosts: ['bench.turret.test:443'], unsafe_addresses: [`${ADDR}/32`] }],
      local: { 'bench.turret.test': ADDR },
    },
  });
  const common = ['--rules', path.join(dir, 'rules'), '--ca', path.join(dir, 'ca')];
  const turret = spawn(process.execPath, [MAIN, 'start', ...common, '--listen', '127.0.0.1:0', '--admin', 'off', '--audit', path.join(dir, 'audit.jsonl'), '--log-level', 'info'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const port = await new Promise<number>((resolve) => {
    let err = '';
    turret.stderr.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /"msg":"turret started".*?"listen":"[^"]*:(\d+)"/.exec(err);
      if (m) resolve(Number(m[1]));
    });
  });
  try {
    const env = await run(process.execPath, [MAIN, 'env', '--agent', 'bench', ...common, '--proxy', `127.0.0.1:${port}`]);
    const proxyUrl = /HTTPS_PROXY='([^']+)'/.exec(env)?.[1] ?? '';
    const ca = path.join(dir, 'ca/ca.crt');
    const clientArgs = (mode: string): string[] => [CLIENT, mode, 'bench.turret.test', '443', String(N), String(BIG)];
    const outside = JSON.parse(await run(process.execPath, clientArgs('proxy'), { env: { ...process.env, HTTPS_PROXY: proxyUrl, NODE_EXTRA_CA_CERTS: ca } })) as Record<
      string,
      number
    >;
    const runArgs = [MAIN, 'run', '--agent', 'bench', ...common, '--proxy', `127.0.0.1:${port}`, '--audit', path.join(dir, 'audit.jsonl'), '--', 'node'];
    const bridged = JSON.parse(await run(process.execPath, [...runArgs, ...clientArgs('proxy')], { cwd: work })) as Record<string, number>;
    const direct = JSON.parse(await run(process.execPath, [...runArgs, ...clientArgs('direct')], { cwd: work })) as Record<string, number>;
    const r: Record<string, number> = {};
    for (const [name, x] of [
      ['outside, explicit proxy', outside],
      ['turret run, explicit proxy over the bridge', bridged],
      ['turret run, proxy ignored (443 → transparent)', direct],
    ] as const) {
      r[`${name}: p50 ms`] = x.p50 ?? 0;
      r[`${name}: p99 ms`] = x.p99 ?? 0;
      r[`${name}: MB/s`] = x.mbps ?? 0;
    }
    return r;
  } finally {
    turret.kill('SIGTERM');
    server.closeAllConnections();
    server.close();
  }
}
