/**
 * A real redis-server (Debian package redis-server) for the shared-state tests: loopback only,
 * no persistence (`--save '' --appendonly no`), on a port the OS picked. stop() and start() keep
 * the port, so a test can take Redis away mid-traffic and bring it back at the same address.
 * Optionally TLS-only and with a password, like a production Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { FIXTURES, UPSTREAM_CA_FILE } from './upstream.js';

export interface RedisServer {
  port: number;
  url: string;
  /** Starts (again) on the same port; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it (SIGTERM) and resolves once the process has exited. */
  stop(): Promise<void>;
  /** Runs redis-cli against it. */
  cli(args: string[]): Promise<string>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * `tls`: serve TLS only, with the committed test-only upstream certificate (SAN localhost,
 * 127.0.0.1); `password`: requirepass.
 */
export async function startRedis(o: { tls?: boolean; password?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const tlsArgs = o.tls
    ? [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--tls-cert-file',
        path.join(FIXTURES, 'upstream.crt'),
        '--tls-key-file',
        path.join(FIXTURES, 'upstream.key'),
        '--tls-ca-cert-file',
        UPSTREAM_CA_FILE,
        '--tls-auth-clients',
        'no',
      ]
    : ['--port', String(port)];
  const start = async (): Promise<void> => {
    // Bounded: a port another process grabbed in between fails fast and visibly.
    const p = spawn(
      'redis-server',
      [...tlsArgs, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', ...(o.password ? ['--requirepass', o.password] : [])],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc = p;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start in 10 s:\n${out}`)), 10_000);
      p.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        if (/Ready to accept connections/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      p.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}:\n${out}`));
      });
    });
  };
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return resolve();
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  const cli = (args: string[]): Promise<string> =>
    new Promise((resolve, reject) => {
      const auth = [...(o.tls ? ['--tls', '--cacert', UPSTREAM_CA_FILE, '--sni', 'localhost'] : []), ...(o.password ? ['--no-auth-warning', '-a', o.password] : [])];
      const p = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...auth, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      p.on('error', reject);
      p.on('close', () => resolve(out));
    });
  await start();
  return { port, url: o.tls ? `rediss://localhost:${port}` : `redis://127.0.0.1:${port}`, start, stop, cli };
}
