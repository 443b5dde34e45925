/**
 * Name resolution with and without Turret's cache, against the test UDP DNS server on loopback
 * (test/helpers/dns-server.ts), in one run:
 *   uncached — every resolve sends A + AAAA through c-ares (net/resolver.ts systemLookup)
 *   cached   — createResolver: TTL cache, bounded LRU, one in-flight query per name
 * Workload: 20 000 resolves of 200 names (TTL 300 s) at concurrency 64, plus a burst of 1 000
 * concurrent resolves of one cold name (coalescing). getaddrinfo is not measured: it cannot be
 * pointed at a loopback server without touching the machine's resolver configuration.
 */
import { startDnsServer } from '../test/helpers/dns-server.js';
import { createResolver, systemLookup } from '../src/net/resolver.js';

const NAMES = 200;
const TOTAL = 20_000;
const CONCURRENCY = 64;

async function drive(resolve: (name: string) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < TOTAL) {
      const i = next++;
      await resolve(`h${i % NAMES}.bench.test`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return TOTAL / ((performance.now() - started) / 1000);
}

export async function benchDns(): Promise<Record<string, number>> {
  const dns = await startDnsServer((name, type) => (type === 'A' ? { addresses: [`203.0.113.${name.length % 250}`], ttl: 300 } : { addresses: ['2001:db8::1'], ttl: 300 }));
  const total = (): number => [...dns.queries.values()].reduce((a, b) => a + b, 0);
  try {
    const raw = systemLookup([dns.address]);
    await drive(raw); // warm up c-ares and the JIT
    let q0 = total();
    const uncached = await drive(raw);
    const uncachedQueries = total() - q0;

    const resolver = createResolver({ servers: [dns.address] });
    q0 = total();
    const cached = await drive((n) => resolver.resolve(n));
    const cachedQueries = total() - q0;

    const cold = createResolver({ servers: [dns.address] });
    q0 = total();
    const t = performance.now();
    await Promise.all(Array.from({ length: 1_000 }, () => cold.resolve('burst.bench.test')));
    const burstMs = performance.now() - t;
    const burstQueries = total() - q0;

    return {
      'uncached resolves/s (c-ares, A+AAAA each)': uncached,
      'cached resolves/s (createResolver)': cached,
      'ratio cached/uncached': cached / uncached,
      'DNS queries sent, uncached (20 000 resolves)': uncachedQueries,
      'DNS queries sent, cached (20 000 resolves)': cachedQueries,
      '1 000 concurrent resolves of one cold name: ms': burstMs,
      '1 000 concurrent resolves of one cold name: queries': burstQueries,
    };
  } finally {
    await dns.close();
  }
}
