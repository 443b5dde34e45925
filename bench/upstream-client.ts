/**
 * The upstream client alone: CPU per small HTTPS GET of Turret's own HTTP/1.1 client
 * (src/proxy/upstream-h1.ts) against undici's Agent (what the forward stage used before), in one
 * process, alternated, against the peers bench's upstream in its own process (so its CPU is not
 * counted). Both dial the same way (tls.connect with one shared SecureContext, verified against the
 * test CA, SNI echo.turret.test) and keep connections alive; each round sends REQUESTS GETs of
 * /small at CONCURRENCY and reads every body whole. Prints µs of this process's CPU (user +
 * system, process.cpuUsage) per request for each round, and the medians; a third subject reads
 * Turret's client's answers through their Readable (made on demand when the body came whole), to
 * measure what handing a small body over whole saves.
 *
 *   node --import tsx bench/upstream-client.ts            UPC_ROUNDS=6 UPC_REQUESTS=20000 UPC_CONCURRENCY=16
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import type { H1Answer } from '../src/proxy/upstream-h1.js';
import { OriginPool } from '../src/proxy/upstream-h1-pool.js';
import { ExchangeEnding } from '../src/proxy/ending.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROUNDS = Number(process.env.UPC_ROUNDS ?? 6);
const REQUESTS = Number(process.env.UPC_REQUESTS ?? 20_000);
const CONCURRENCY = Number(process.env.UPC_CONCURRENCY ?? 16);
const ca = readFileSync(path.join(HERE, '../test/fixtures/upstream-ca.crt'), 'utf8');
const secureContext = tls.createSecureContext({ ca, minVersion: 'TLSv1.2' });

function dial(port: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'echo.turret.test', secureContext, ALPNProtocols: ['http/1.1'] });
    s.once('secureConnect', () => resolve(s)).once('error', reject);
  });
}

async function main(): Promise<void> {
  const up = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'peers-upstream.ts')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const ports = await new Promise<{ https: number }>((resolve) => up.stdout.once('data', (d: Buffer) => resolve(JSON.parse(d.toString()) as { https: number })));
  const port = ports.https;
  const origin = `https://echo.turret.test:${port}`;
  const headers: Array<[string, string]> = [
    ['host', `echo.turret.test:${port}`],
    ['user-agent', 'bench'],
    ['accept', '*/*'],
  ];

  const agent = new Agent({
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: 60_000,
    connections: 64,
    maxHeaderSize: 64 * 1024,
    connect: (_o, cb) =>
      void dial(port).then(
        (s) => cb(null, s),
        (e: Error) => cb(e, null),
      ),
  });
  const flat = headers.flat();
  const viaUndici = (): Promise<void> =>
    new Promise((resolve, reject) => {
      agent.request({ origin, path: '/small', method: 'GET', headers: flat }, (err, data) => {
        if (err) return reject(err);
        data.body.text().then(() => resolve(), reject);
      });
    });

  const pool = new OriginPool(() => dial(port), 64, { headersMs: 60_000, bodyMs: 300_000 });
  const bound = { clear(): void {} };
  const viaOwn = (): Promise<void> =>
    new Promise((resolve, reject) => {
      pool.request({ method: 'GET', path: '/small', headers, body: undefined, length: undefined }, new ExchangeEnding(), bound, (err: Error | null, a: H1Answer | null) => {
        if (err || !a) return reject(err);
        if (a.whole !== null) return resolve();
        const chunks: Buffer[] = [];
        a.body
          .on('data', (c: Buffer) => chunks.push(c))
          .once('end', () => resolve())
          .once('error', reject);
      });
    });

  // The same client, but the body always read through its Readable (made on demand for a whole body).
  const viaOwnStream = (): Promise<void> =>
    new Promise((resolve, reject) => {
      pool.request({ method: 'GET', path: '/small', headers, body: undefined, length: undefined }, new ExchangeEnding(), bound, (err: Error | null, a: H1Answer | null) => {
        if (err || !a) return reject(err);
        const chunks: Buffer[] = [];
        a.body
          .on('data', (c: Buffer) => chunks.push(c))
          .once('end', () => resolve())
          .once('error', reject);
      });
    });

  const run = async (send: () => Promise<void>, n: number): Promise<number> => {
    let left = n;
    const start = process.cpuUsage();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (left-- > 0) await send();
      }),
    );
    const used = process.cpuUsage(start);
    return (used.user + used.system) / n;
  };
  await run(viaUndici, 2_000);
  await run(viaOwn, 2_000);
  const res: Record<string, number[]> = { undici: [], own: [], ownStream: [] };
  const how = { undici: viaUndici, own: viaOwn, ownStream: viaOwnStream };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? (['undici', 'own', 'ownStream'] as const) : (['ownStream', 'own', 'undici'] as const);
    for (const k of order) res[k]!.push(await run(how[k], REQUESTS));
    console.log(
      `round ${r + 1}: undici ${res.undici!.at(-1)!.toFixed(1)} µs, own ${res.own!.at(-1)!.toFixed(1)} µs, own read as a stream ${res.ownStream!.at(-1)!.toFixed(1)} µs per request`,
    );
  }
  const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? NaN;
  const diffs = res.undici!.map((u, i) => u - (res.own![i] ?? NaN));
  const streamDiffs = res.ownStream!.map((u, i) => u - (res.own![i] ?? NaN));
  console.log(`median: undici ${median(res.undici!).toFixed(1)} µs, own ${median(res.own!).toFixed(1)} µs, own as a stream ${median(res.ownStream!).toFixed(1)} µs`);
  console.log(`undici − own per round: ${diffs.map((d) => d.toFixed(1)).join(' / ')} (median ${median(diffs).toFixed(1)})`);
  console.log(`stream − whole per round: ${streamDiffs.map((d) => d.toFixed(1)).join(' / ')} (median ${median(streamDiffs).toFixed(1)})`);
  await agent.destroy();
  pool.close(true);
  up.kill('SIGTERM');
}

await main();
