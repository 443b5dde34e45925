/**
 * The first program in a run's network namespace (launch.ts starts it there, before the
 * command). It binds what the sandbox's clients will dial — the proxy port, 80 and 443 on
 * 127.0.0.1, and the stub resolver's UDP 53 — and hands the listening sockets to `turret run`
 * over the IPC channel, then exits. From then on `turret run` accepts on them from outside the
 * sandbox (a socket keeps the namespace it was made in), so no relay process lives inside where
 * the command could trace it, kill it or borrow what it holds. Ports below 1024 can be bound
 * because this runs as root of the run's own user namespace, which owns the network namespace.
 *
 * argv: PROXY_PORT. Imports nothing from Turret: it must start fast and know nothing secret.
 */
import dgram from 'node:dgram';
import net from 'node:net';

const proxyPort = Number(process.argv[2]);

function fail(why: string): never {
  process.stderr.write(`turret run: the sandbox could not set up its network: ${why}\n`);
  process.exit(125);
}

function listenTcp(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ port, host: '127.0.0.1', backlog: 511 }, () => resolve(s));
  });
}

function bindUdp(port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(port, '127.0.0.1', () => resolve(s));
  });
}

function send(kind: string, handle: net.Server | dgram.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error('no IPC channel'));
    process.send({ kind }, handle as net.Server, {}, (e) => (e ? reject(e) : resolve()));
  });
}

async function main(): Promise<void> {
  if (!Number.isInteger(proxyPort) || proxyPort <= 0 || proxyPort > 65535) fail('bad proxy port');
  const proxy = await listenTcp(proxyPort);
  const http = await listenTcp(80);
  const https = await listenTcp(443);
  const dns = await bindUdp(53);
  await send('proxy', proxy);
  await send('http', http);
  await send('https', https);
  await send('dns', dns);
  // Wait for turret run to say it owns them, then leave: our copies close with us.
  process.on('message', (m) => {
    if (m === 'go') process.exit(0);
  });
}

main().catch((e: Error & { code?: string }) => fail(e.code ?? e.message));
