/**
 * `npm run bench -- audit`: what the audit log costs per record, in process (issue #15).
 *
 *   record build   what the event loop does to a record before it copies it into the ring:
 *                  chainBody(scrub(record)) (formatChainLine(scrub(record)) in builds before the
 *                  writer thread chained the records), with start.ts's line filter (handle
 *                  references, a real scrubber: builtin patterns + 1 secret, the clean-string
 *                  memo); CPU µs
 *   event loop     the real openAuditLog's write() with that scrub, 3 000 records a round then a
 *                  flush: the event-loop thread's own CPU (/proc/self/task/PID/schedstat) per
 *                  record (min of 22 rounds), and every other thread's (writer thread, GC; median)
 *   writer         the real openAuditLog against a file, minus the same loop into a sink that
 *                  only builds the chain line (formatChainLine) and drops it;
 *                  process CPU of every thread (event loop, thread pool, writer thread) per record:
 *                  busy = the event loop never idles (~300 µs of work per record, like the proxy
 *                  under the cpu bench), tick = 2 records per 1 ms interval (the loop idles between)
 *
 * BENCH_AUDIT_DIST=/path/to/dist measures another build (a copy of an older dist/) the same way,
 * for A/B runs. The record build is the minimum of 4 rounds, the writer the median of 4 (each a
 * difference of two runs, so a disturbed round can go either way). A temp dir only.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

type Rec = Record<string, unknown>;
interface Sink {
  write(r: Rec): void;
  flush?(): Promise<void>;
  close(): Promise<void>;
}

const DIST = process.env.BENCH_AUDIT_DIST ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const imp = async <T>(p: string): Promise<T> => (await import(path.join(DIST, p))) as T;

const rec = (i: number): Rec => ({
  time: new Date(Date.now() + i).toISOString(),
  event: 'request',
  outcome: 'completed',
  agent: 'bench',
  method: 'GET',
  scheme: 'https',
  host: 'echo.turret.test',
  port: 8443,
  path: '/small',
  rule: 'rules/bench.yaml:3',
  status: 200,
  bytes_in: 0,
  bytes_out: 234,
  duration_ms: 1.3,
  client: `127.0.0.1:${40000 + (i % 8)}`,
  request_id: randomBytes(8).toString('hex'),
});

/** start.ts's audit scrub: the record line filter over a real scrubber, with the clean-string memo. */
async function lineFilter(): Promise<{ scrub: (r: Rec) => Rec }> {
  const { compileScrubber } = await imp<{ compileScrubber: (o: unknown) => object }>('scrub/scrubber.js');
  const { compilePatterns, BUILTIN_PATTERNS } = await imp<{ compilePatterns: (s: unknown) => unknown; BUILTIN_PATTERNS: unknown }>('scrub/patterns.js');
  const { scrubUnlessClean } = await imp<{ scrubUnlessClean: (o: object, t: string, f: (t: string) => string) => string }>('proxy/clean-strings.js');
  const { recordLine } = await imp<{ recordLine: (r: unknown, s: object, t: string) => string }>('proxy/record-line.js');
  const { keyRingFrom } = await imp<{ keyRingFrom: (b: Buffer) => unknown }>('secrets/keys.js');
  // Builds before the fourth pass walked the whole record with scrubJson.
  const scrubRecord = await imp<{ scrubRecordText: (r: Rec, f: (t: string) => string) => Rec }>('proxy/record-scrub.js')
    .then((m) => m.scrubRecordText)
    .catch(async () => {
      const { scrubJson } = await imp<{ scrubJson: (r: Rec, f: (t: string) => string) => Rec }>('scrub/json.js');
      return scrubJson;
    });
  const ring = keyRingFrom(randomBytes(32));
  const scrubber = compileScrubber({
    secrets: [{ name: 's', value: randomBytes(16).toString('hex'), replacement: '[REDACTED:secret:s]' }],
    patterns: compilePatterns(BUILTIN_PATTERNS),
  });
  const line = (s: string): string => scrubUnlessClean(scrubber, s, (t) => recordLine(ring, scrubber, t));
  return { scrub: (r) => scrubRecord(r, line) };
}

async function recordBuild(): Promise<number> {
  const { scrub } = await lineFilter();
  const { formatChainLine, chainBody } = await imp<{ formatChainLine: (r: Rec, seq: number, prev: string) => { hash: string }; chainBody?: (r: Rec) => string }>('audit/line.js');
  const recs = Array.from({ length: 4096 }, (_, i) => rec(i));
  let prev = '0'.repeat(64);
  const per: number[] = [];
  for (let round = 0; round < 5; round++) {
    const n = 40_000;
    const c0 = process.cpuUsage();
    if (chainBody) for (let i = 0; i < n; i++) prev = chainBody(scrub(recs[i % recs.length]!));
    else for (let i = 0; i < n; i++) prev = formatChainLine(scrub(recs[i % recs.length]!), i + 1, prev).hash;
    const c = process.cpuUsage(c0);
    if (round > 0) per.push((c.user + c.system) / n); // round 0 warms up
  }
  return Math.min(...per);
}

function spin(us: number): void {
  const end = process.hrtime.bigint() + BigInt(us * 1000);
  while (process.hrtime.bigint() < end);
}

async function feed(sink: Sink, busy: boolean, ms: number): Promise<number> {
  let i = 0;
  const c0 = process.cpuUsage();
  const t0 = Date.now();
  await new Promise<void>((done) => {
    if (busy) {
      const step = (): void => {
        spin(300);
        sink.write(rec(i++));
        if (Date.now() - t0 > ms) done();
        else setImmediate(step);
      };
      step();
    } else {
      const iv = setInterval(() => {
        sink.write(rec(i++));
        sink.write(rec(i++));
        if (Date.now() - t0 > ms) {
          clearInterval(iv);
          done();
        }
      }, 1);
    }
  });
  await sink.flush?.();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / i;
}

async function writerCost(busy: boolean): Promise<number> {
  const { openAuditLog } = await imp<{ openAuditLog: (o: { path: string }) => Promise<Sink> }>('audit/writer.js');
  const { formatChainLine } = await imp<{ formatChainLine: (r: Rec, seq: number, prev: string) => { hash: string } }>('audit/line.js');
  const lineOnly = (): Sink => {
    let seq = 0;
    let prev = '0'.repeat(64);
    return { write: (r) => void (prev = formatChainLine(r, ++seq, prev).hash), close: async () => {} };
  };
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-audit-'));
  try {
    const diffs: number[] = [];
    for (let r = 0; r < 4; r++) {
      const m = await feed(lineOnly(), busy, 1500);
      const log = await openAuditLog({ path: path.join(dir, `a${r}.jsonl`) });
      const f = await feed(log, busy, 1500);
      await log.close();
      diffs.push(f - m);
    }
    diffs.sort((a, b) => a - b);
    return (diffs[1]! + diffs[2]!) / 2; // the median: a single round is easily disturbed either way
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU ns of one thread of this process so far (0: the event loop). */
function threadNs(tid: number): number {
  return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
}

/** The real file log's write() with start.ts's scrub: µs of the event loop, and of all other threads, per record. */
async function eventLoopCost(): Promise<[number, number]> {
  const { openAuditLog } = await imp<{ openAuditLog: (o: { path: string; scrub: (r: Rec) => Rec }) => Promise<Sink> }>('audit/writer.js');
  const { scrub } = await lineFilter();
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-audit-'));
  try {
    const log = await openAuditLog({ path: path.join(dir, 'a.jsonl'), scrub });
    const recs = Array.from({ length: 4096 }, (_, i) => rec(i));
    let best = Infinity;
    const others: number[] = [];
    for (let round = 0; round < 24; round++) {
      const m = 3000;
      const all0 = allThreadsNs();
      const t0 = threadNs(process.pid);
      for (let i = 0; i < m; i++) log.write(recs[i % recs.length]!);
      const t = threadNs(process.pid) - t0;
      await log.flush?.();
      if (round < 2) continue; // warm-up
      best = Math.min(best, t / m / 1000);
      others.push((allThreadsNs() - all0 - t) / m / 1000);
    }
    await log.close();
    others.sort((a, b) => a - b);
    return [best, others[others.length >> 1]!];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function allThreadsNs(): number {
  let ns = 0;
  for (const t of readdirSync('/proc/self/task')) {
    try {
      ns += threadNs(Number(t));
    } catch {
      // a thread that ended meanwhile
    }
  }
  return ns;
}

export async function benchAudit(): Promise<Record<string, number>> {
  const [loop, others] = await eventLoopCost();
  return {
    'record build: CPU µs per record (min)': await recordBuild(),
    'write(), event loop: CPU µs per record (min)': loop,
    'write(), other threads: CPU µs per record (median)': others,
    'writer, busy loop: process CPU µs per record (median)': await writerCost(true),
    'writer, 1 ms ticks: process CPU µs per record (median)': await writerCost(false),
  };
}
