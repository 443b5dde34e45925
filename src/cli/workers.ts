/**
 * `turret start --workers N`: all cores of one machine. The primary process validates the rules,
 * creates the CA and key file once (N workers creating them at the same time would race), then
 * forks N workers with node:cluster. Every worker runs the ordinary `turret start` and listens on
 * the same addresses; cluster hands each accepted connection to one worker (round robin on
 * Linux), so the proxy, transparent and admin ports are shared.
 *
 * What the workers share: rate limits and revocations through `settings.shared_state` (Redis),
 * like separate replicas. Without it, each worker keeps its own buckets (a limit then applies
 * per worker) and revocations still reach all of them through the revocation file; production
 * refuses --workers without shared state for that reason.
 *
 * The audit log stays one hash chain per process: worker K writes audit.wK.jsonl beside the
 * path given (`turret audit verify audit.jsonl` finds and checks every worker's chain).
 *
 * Signals: SIGTERM/SIGINT go to every worker, which drain as a single process would; the primary
 * exits once they all have. SIGHUP is forwarded (reload). A worker that dies is replaced, at
 * most 5 times a minute; beyond that the primary stops everything and exits 1.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { loadPolicy } from '../config/load.js';
import { createLogger, type Level } from '../core/log.js';
import { loadKeyRing } from '../secrets/keys.js';
import { loadOrCreateCa } from '../tls/ca.js';
import { caDir, rulesDir, UsageError } from './common.js';
import { productionFromEnv } from './production.js';
import type { StartOptions } from './start.js';
import { workerExecArgv } from './heap.js';

export const MAX_WORKERS = 64;
const RESTARTS_PER_MINUTE = 5;

export function parseWorkers(flag: string | number | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const raw = flag ?? env.TURRET_WORKERS;
  if (raw === undefined) return 1;
  const s = String(raw).trim();
  if (s === 'auto') return Math.min(MAX_WORKERS, availableParallelism());
  const n = Number(s);
  if (!/^\d{1,3}$/.test(s) || n < 1 || n > MAX_WORKERS) throw new UsageError(`--workers must be a number from 1 to ${MAX_WORKERS} or "auto", got "${s.slice(0, 20)}"`);
  return n;
}

/** audit.jsonl → audit.w2.jsonl in worker 2; unchanged in a single process and for "off". */
export function workerAuditPath(spec: string, worker: string | undefined = cluster.isWorker ? process.env.TURRET_WORKER_ID : undefined): string {
  if (spec === 'off' || !worker) return spec;
  const ext = path.extname(spec);
  return ext ? `${spec.slice(0, -ext.length)}.w${worker}${ext}` : `${spec}.w${worker}`;
}

export async function startPrimary(o: StartOptions, n: number, hupHandled: () => void = () => undefined): Promise<void> {
  const log = createLogger({ level: (o.logLevel ?? process.env.TURRET_LOG_LEVEL ?? 'info') as Level });
  const production = productionFromEnv(o.production);
  const policy = await loadPolicy(rulesDir(o)); // ConfigError → exit 2 before any worker starts
  if (!policy.settings.sharedState) {
    const why = `--workers ${n} without settings.shared_state: each worker would keep its own rate-limit buckets (a limit would allow ${n} times its rate)`;
    if (production) throw new UsageError(`${why}; production mode refuses it. Name a Redis in settings.shared_state (docs/operations.md) or run one process`);
    log.warn(`${why}; revocations still reach every worker through the revocation file`);
  }
  const dir = caDir(o);
  const { created } = await loadOrCreateCa(dir, true);
  if (created) log.info('created a new local CA', { dir, cert: path.join(dir, 'ca.crt') });
  await loadKeyRing(dir, true);

  const workers = new Map<number, Worker>();
  /** Workers that said they listen: only those have their SIGHUP handler (start.ts); others get it then. */
  const listeningWorkers = new Set<Worker>();
  const hupPending = new Set<Worker>();
  const restarts: number[] = [];
  let listening = 0;
  let stopping = false;
  let exitWith = 0;
  // Workers get the young-generation ceiling the launchers give a single process (heap.ts).
  cluster.setupPrimary({ execArgv: workerExecArgv() });
  const fork = (k: number): void => {
    const w = cluster.fork({ TURRET_WORKER_ID: String(k) });
    workers.set(k, w);
    w.on('message', (m: unknown) => {
      if ((m as { turret?: string })?.turret !== 'listening') return;
      listeningWorkers.add(w);
      if (hupPending.delete(w)) w.process.kill('SIGHUP');
      if (++listening === n) log.info('turret workers started', { workers: n, pids: [...workers.values()].map((x) => x.process.pid) });
    });
    w.on('exit', (code, signal) => {
      if (workers.get(k) === w) workers.delete(k);
      listeningWorkers.delete(w);
      hupPending.delete(w);
      if (stopping) {
        // A worker whose shutdown lost audit records (exit 1, or SIGKILL after a stuck audit disk:
        // docs/operations.md) makes the whole stop unclean.
        if (code !== 0) exitWith = exitWith || 1;
        if (workers.size === 0) {
          log.info('stopped: every worker has exited', { workers: n });
          process.exit(exitWith);
        }
        return;
      }
      const now = Date.now();
      restarts.push(now);
      while (restarts.length > 0 && now - (restarts[0] ?? now) > 60_000) restarts.shift();
      if (restarts.length > RESTARTS_PER_MINUTE) {
        log.error('workers keep dying; stopping', { worker: k, code, signal, restarts_last_minute: restarts.length });
        stopAll('SIGTERM', 1);
        return;
      }
      log.error('worker exited; starting a new one', { worker: k, code, signal });
      fork(k);
    });
  };
  const stopAll = (sig: NodeJS.Signals, exitCode = 0): void => {
    if (stopping) return;
    stopping = true;
    exitWith = exitCode;
    log.info('stopping: signalling every worker', { signal: sig, workers: workers.size });
    if (workers.size === 0) process.exit(exitCode);
    for (const w of workers.values()) w.process.kill(sig === 'SIGINT' ? 'SIGTERM' : sig);
  };
  process.on('SIGTERM', () => stopAll('SIGTERM'));
  process.on('SIGINT', () => stopAll('SIGINT'));
  // A worker still starting would be ended by a SIGHUP (Node's default until start.ts listens):
  // it gets the reload once it says it listens.
  process.on('SIGHUP', () => {
    for (const w of workers.values()) {
      if (listeningWorkers.has(w)) w.process.kill('SIGHUP');
      else hupPending.add(w);
    }
  });
  hupHandled();
  for (let k = 1; k <= n; k++) fork(k);
}
