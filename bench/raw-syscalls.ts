/**
 * RAW_SYSCALLS=1 of bench/raw-http.ts: a subject's system calls per request over its first
 * measured window, by kind (`perf stat` on the kernel's syscall tracepoints, every thread of the
 * process: the event loop, an audit writer thread, libuv's and V8's workers). It answers whether a
 * proxy makes more kernel round trips per exchange than another (reads, writes, epoll, futex
 * wake-ups between threads) rather than spending more in each.
 *
 * perf attaches a few milliseconds after the window opens, so the counts are a little low against
 * the window's request count (~1% of a 3 s window); every subject is counted the same way.
 */
import { spawn } from 'node:child_process';

const KINDS = ['read', 'write', 'writev', 'epoll_wait', 'epoll_pwait', 'epoll_ctl', 'futex', 'statx', 'mprotect', 'madvise'];

/** Starts counting `pid`'s system calls; the returned function stops and gives calls by kind ('all' for every kind). */
export function countSyscalls(pid: number): () => Promise<Map<string, number>> {
  const events = ['raw_syscalls:sys_enter', ...KINDS.map((k) => `syscalls:sys_enter_${k}`)];
  const p = spawn('perf', ['stat', '-x', ',', '-e', events.join(','), '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let out = '';
  p.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => {
    p.once('exit', () => resolve());
    p.once('error', () => resolve());
  });
  return async () => {
    p.kill('SIGINT');
    await exited;
    const counts = new Map<string, number>();
    for (const line of out.split('\n')) {
      const [count, , event] = line.split(',');
      const m = /^(?:raw_syscalls:sys_enter|syscalls:sys_enter_(\w+))$/.exec(event ?? '');
      if (m) counts.set(m[1] ?? 'all', Number(count) || 0);
    }
    return counts;
  };
}

/** One table row per subject: calls per request of each kind that any subject made at least 0.05 of. */
export function syscallTable(rows: [string, Map<string, number>, number][]): string[] {
  const kinds = ['all', ...KINDS].filter((k) => rows.some(([, c, n]) => (c.get(k) ?? 0) / n >= 0.05));
  const per = (c: Map<string, number>, n: number, k: string): string => ((c.get(k) ?? 0) / n).toFixed(2);
  return [
    `| subject | requests | ${kinds.join(' | ')} |`,
    `|---|---|${kinds.map(() => '---').join('|')}|`,
    ...rows.map(([name, c, n]) => `| ${name} | ${n} | ${kinds.map((k) => per(c, n, k)).join(' | ')} |`),
  ];
}
