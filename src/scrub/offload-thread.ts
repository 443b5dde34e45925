/** The scan worker thread (offload.ts starts it): runs a Scanner (offload-scan.ts) on its port. */
import { parentPort, workerData } from 'node:worker_threads';
import { Scanner } from './offload-scan.js';
import type { ToWorker } from './offload-protocol.js';

if (!parentPort) throw new Error('offload-thread.ts runs as a worker thread');
const port = parentPort;
const exitAfter = (workerData as { exitAfter?: number } | null)?.exitAfter;
// Test hook (offload.ts, TURRET_TEST_SCAN_WORKER_EXIT_AFTER): the thread exits as if it crashed.
const onGiven = exitAfter === undefined ? undefined : (n: number): void => void (n > exitAfter && process.exit(70));
const scanner = new Scanner((m, transfer) => port.postMessage(m, transfer), onGiven);
port.on('message', (m: ToWorker) => scanner.handle(m));
