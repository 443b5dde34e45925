/**
 * Opening the file log (writer.ts): where the chain stands in an existing file, and starting the
 * writer thread (writer-thread.ts) and waiting until it has the file open.
 */
import { Worker } from 'node:worker_threads';
import { TurretError } from '../core/errors.js';
import { GENESIS_PREV, parseChainLine } from './line.js';
import { readLastLine } from './read-lines.js';
import type { FromThread, ThreadInit } from './writer-thread.js';

/** Where the chain stands in an existing log: the last line of path, or of path.1 after a rotation that crashed. */
export async function chainTail(path: string): Promise<{ seq: number; hash: string }> {
  for (const file of [path, `${path}.1`]) {
    const last = await readLastLine(file);
    if (last === null) continue;
    const fix = `run "turret audit verify ${file}"; then move the file aside or remove its damaged last line`;
    if (!last.terminated) throw new TurretError('internal_error', `audit log ${file} ends with an incomplete line; ${fix}`);
    const parsed = parseChainLine(last.line);
    if (!parsed.ok) throw new TurretError('internal_error', `audit log ${file} last line is malformed (${parsed.detail}); ${fix}`);
    if (!parsed.intact) throw new TurretError('internal_error', `audit log ${file} last line does not match its hash; ${fix}`);
    return { seq: parsed.seq, hash: parsed.hash };
  }
  return { seq: 0, hash: GENESIS_PREV };
}

/**
 * The writer thread. From source under tsx (the tests) the thread registers tsx itself: a worker
 * does not inherit its parent's loader hooks, and its entry there is the .ts file.
 *
 * Descriptors belong to the process, not the thread: the ones a thread opened with fs.openSync and
 * had not closed when it died (terminated, out of memory, a bug) are closed by Node as the thread
 * ends, because of `trackUnmanagedFds` (Node's default since 14.6, spelled out here so the log
 * never depends on a default). The event loop must not close them itself: by the time it hears of
 * the exit the number may already belong to another file or socket
 * (test/unit/audit-writer-fds.test.ts).
 */
export function startThread(init: ThreadInit): Worker {
  if (import.meta.url.endsWith('.ts')) {
    const url = new URL('./writer-thread.ts', import.meta.url).href;
    const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}); })`;
    return new Worker(boot, { eval: true, workerData: init, trackUnmanagedFds: true });
  }
  return new Worker(new URL('./writer-thread.js', import.meta.url), { workerData: init, trackUnmanagedFds: true });
}

/** Waits for a new thread to open the file; rejects with the open's error (as fs would throw it). */
export function opened(w: Worker, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onMessage = (m: FromThread): void => {
      if (m.t !== 'ready' && m.t !== 'fatal') return;
      w.off('message', onMessage);
      w.off('exit', onExit);
      if (m.t === 'ready') resolve();
      else reject(Object.assign(new Error(m.message), { code: m.code }));
    };
    const onExit = (code: number): void => reject(new Error(`audit writer thread for ${path} exited before it opened the file (code ${code})`));
    w.on('message', onMessage);
    w.once('exit', onExit);
  });
}
