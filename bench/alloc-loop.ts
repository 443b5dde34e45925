/**
 * What bench/peers-alloc.ts and bench/peers-alloc-sites.ts share: a turret (dist/) with the peers
 * bench's rules and a preload that answers SIGUSR2 (start a window) and SIGUSR1 (write a result
 * file), warmed up with the cpu bench's 8-connection small-GET loop, then measured windows.
 */
import { readFileSync } from 'node:fs';
import { closedLoop, httpClient, httpsClient } from './peers-load.js';
import { startUpstreams, turretSubject } from './peers.js';

export interface AllocWindow {
  /** Requests completed in the window. */
  count: number;
  /** Asks the turret for its result (SIGUSR1) and returns the file it writes; closes the client. */
  collect: (file: string) => Promise<string>;
}

/** Starts the turret with `preload`, warms it up for 3 s, and lets `body` measure windows of 3 s. */
export async function allocRun(scenario: string, preload: string, body: (window: () => Promise<AllocWindow>) => Promise<void>): Promise<void> {
  const up = await startUpstreams();
  // ALLOC_NODE_OPTIONS: more node flags for the turret, e.g. `--max-semi-space-size=16` (V8's default, instead of the launchers' ceiling).
  const { subject: s, stop } = await turretSubject(up.ports, true, 'turret', { NODE_OPTIONS: `--import=${preload} ${process.env.ALLOC_NODE_OPTIONS ?? ''}`.trim() });
  const pid = s.pid ?? 0;
  const headers = scenario === 'handle' ? (s.variants['with handle injection'] ?? {}) : {};
  const client = () => (scenario === 'http' ? httpClient(s.route, up.ports.http, 'echo.turret.test', 8) : httpsClient(s.route, up.ports.https, 'echo.turret.test', 8));
  try {
    const warm = client();
    await closedLoop(() => warm.get('/small', headers), { concurrency: 8, warmupMs: 0, durationMs: 3_000, maxRequests: 1e6 });
    await warm.close();
    await body(async () => {
      const c = client();
      const r = await closedLoop(() => c.get('/small', headers), {
        concurrency: 8,
        warmupMs: 500,
        durationMs: 3_000,
        maxRequests: 1e6,
        onMeasureStart: () => void process.kill(pid, 'SIGUSR2'),
      });
      return {
        count: r.count,
        collect: async (file) => {
          process.kill(pid, 'SIGUSR1');
          // The turret's signal handler writes the file: wait for it (bounded, about 10 s).
          let text = '';
          for (let i = 0; i < 500 && !text; i++) {
            try {
              text = readFileSync(file, 'utf8');
            } catch {
              await new Promise((res) => setTimeout(res, 20));
            }
          }
          await c.close();
          return text;
        },
      };
    });
  } finally {
    await stop();
    up.stop();
  }
}
