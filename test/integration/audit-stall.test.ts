/**
 * A stalled audit disk through the real proxy (docs/operations.md, Audit log: "a slow or stalled
 * disk stops that thread, never the event loop"; "nothing is dropped"). The audit path is a FIFO
 * this test holds open and does not read: once the pipe's 64 KiB are full, Turret's writer thread
 * blocks inside write() (seen in /proc as a task sleeping in pipe_write). While it is stuck the
 * proxy still answers /healthz and refuses denied requests, each one answered. When the "disk"
 * moves again (the test reads the FIFO) every exchange's record arrives exactly once, in request
 * order, with its real cause, and `turret audit verify` passes on what was written. A SIGTERM sent
 * while the disk is stalled waits for those records and then exits 0; a disk that never moves
 * again ends the process after the audit deadline with a clear error instead of hanging it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, read, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { curl } from '../helpers/curl.js';
import { adminPort, httpGet } from '../helpers/ops.js';
import { runCli, startTurret, waitForLog, type TurretProc } from '../helpers/turret.js';

const RULES = 'agents:\n  - name: agent-a\nrules:\n  - { name: r, methods: [read], hosts: ["allowed.test"] }\n';
const root = mkdtempSync(path.join(tmpdir(), 'turret-audit-stall-'));
const procs: TurretProc[] = [];
after(async () => {
  for (const t of procs) await t.stop();
  rmSync(root, { recursive: true, force: true });
});

/** Denied requests (~3.5 KB records) until the writer thread of every process in `pids` is stuck (bounded). */
async function denyUntilStuck(t: TurretProc, token: string, pids: number[]): Promise<void> {
  let sent = 0;
  for (; sent < 400 && !pids.every(stuckInPipeWrite); sent++) {
    const r = await curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `agent-a:${token}`, `http://denied.test/${'p'.repeat(3000)}`]);
    assert.equal(r.status, 403);
  }
  assert.equal(pids.every(stuckInPipeWrite), true, `the writer threads never all blocked after ${sent} records`);
}

/** Whether a thread of `pid` sleeps in a pipe write (the writer thread stuck on the full FIFO). */
function stuckInPipeWrite(pid: number): boolean {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (/pipe_write/.test(readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'utf8'))) return true;
    } catch {
      // the thread ended meanwhile
    }
  }
  return false;
}

it(
  'a stalled audit disk: the proxy keeps answering, and every exchange is recorded exactly once when it moves again, also across a shutdown asked meanwhile',
  { timeout: 60_000 },
  async () => {
    const fifo = path.join(root, 'audit.fifo');
    execFileSync('mkfifo', [fifo]);
    // Read and write end in one: Turret's opens find the other end and never block; nobody reads yet.
    const fd = openSync(fifo, 'r+');
    const t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--audit', fifo, '--no-watch'] });
    procs.push(t);
    const token = /HTTP_PROXY='http:\/\/agent-a:([^@]+)@/.exec((await t.cli(['env', '--agent', 'agent-a'])).stdout)?.[1] ?? '';
    assert.notEqual(token, '');
    let sent = 0;
    /** A denied request with a long path (a ~3.5 KB record), answered 403 by the proxy itself. */
    const denied = async (): Promise<void> => {
      const i = ++sent;
      const r = await curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `agent-a:${token}`, `http://denied.test/req-${i}/${'p'.repeat(3000)}`]);
      assert.equal(r.status, 403, `request ${i}`);
    };
    // Until the pipe is full and the writer thread sleeps in write() (bounded).
    for (let i = 0; i < 200 && !stuckInPipeWrite(t.proc.pid!); i++) await denied();
    assert.equal(stuckInPipeWrite(t.proc.pid!), true, `the writer thread never blocked after ${sent} records`);
    // Stalled: the event loop still serves admin and proxy traffic, each request answered.
    for (let i = 0; i < 10; i++) {
      assert.equal((await httpGet(adminPort(t), '/healthz')).status, 200);
      await denied();
    }
    assert.equal(stuckInPipeWrite(t.proc.pid!), true, 'still stalled while those were answered');
    // Shutdown asked while the disk is stalled: it must wait for the records, not drop them.
    // (Not t.stop(): its SIGKILL fallback would hide a shutdown that does not wait.)
    const stopped = new Promise<void>((resolve) => t.proc.once('exit', () => resolve()));
    t.proc.kill('SIGTERM');
    // The disk moves: read the FIFO until every record is in; Turret then ends (its shutdown
    // flushed), and a mark after that shows any record written twice or late before it.
    let got = '';
    const buf = Buffer.alloc(64 * 1024);
    const readSome = async (): Promise<void> => {
      const k = await new Promise<number>((res, rej) => read(fd, buf, 0, buf.length, null, (e, b) => (e ? rej(e) : res(b))));
      got += buf.subarray(0, k).toString('utf8');
    };
    for (let i = 0; i < 10_000 && (got.match(/\n/g)?.length ?? 0) < sent; i++) await readSome();
    await stopped;
    assert.equal(t.proc.exitCode, 0, t.stderr());
    assert.match(t.stderr(), /"msg":"stopped"/);
    const mark = openSync(fifo, 'w');
    writeFileSync(mark, 'END\n');
    closeSync(mark);
    for (let i = 0; i < 10_000 && !got.endsWith('END\n'); i++) await readSome();
    closeSync(fd);
    const text = got.slice(0, -'END\n'.length);
    const recs = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { seq: number; outcome: string; path: string; host: string });
    assert.deepEqual(
      recs.map((r) => [r.seq, r.outcome, r.host, /^\/req-(\d+)\//.exec(r.path)?.[1]]),
      Array.from({ length: sent }, (_, i) => [i + 1, 'denied', 'denied.test', String(i + 1)]),
    );
    assert.doesNotMatch(t.stderr(), /audit write failed/);
    const copy = path.join(root, 'copy.jsonl');
    writeFileSync(copy, text);
    const v = await runCli(['audit', 'verify', copy]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  },
);

it(
  'a disk that never moves again: SIGTERM still ends the process after the audit deadline, with a clear error (by SIGKILL: the blocked writer thread cannot be joined)',
  { timeout: 60_000 },
  async () => {
    const fifo = path.join(root, 'never.fifo');
    execFileSync('mkfifo', [fifo]);
    const fd = openSync(fifo, 'r+'); // held open, never read
    const t = await startTurret({ rules: { 'r.yaml': RULES }, args: ['--audit', fifo, '--no-watch', '--drain-timeout', '1s'] });
    procs.push(t);
    const token = /HTTP_PROXY='http:\/\/agent-a:([^@]+)@/.exec((await t.cli(['env', '--agent', 'agent-a'])).stdout)?.[1] ?? '';
    await denyUntilStuck(t, token, [t.proc.pid!]);
    const stopped = new Promise<NodeJS.Signals | null>((resolve) => t.proc.once('exit', (_code, signal) => resolve(signal)));
    t.proc.kill('SIGTERM');
    const signal = await stopped;
    closeSync(fd);
    assert.equal(signal, 'SIGKILL', t.stderr());
    assert.match(t.stderr(), /"msg":"stopped","clean":true/);
    assert.match(t.stderr(), /"level":"error","msg":"audit log did not finish writing before the shutdown deadline[^"]*","waited_ms":5000}/);
  },
);

it('the same under --workers 2: every worker ends after the audit deadline and the primary exits 1, not 0', { timeout: 60_000 }, async () => {
  // Each worker writes its own chain (never2.w1.fifo, never2.w2.fifo): both FIFOs, held open, never read.
  const fds = [1, 2].map((k) => {
    const f = path.join(root, `never2.w${k}.fifo`);
    execFileSync('mkfifo', [f]);
    return openSync(f, 'r+');
  });
  const t = await startTurret({
    rules: { 'r.yaml': RULES },
    args: ['--workers', '2', '--audit', path.join(root, 'never2.fifo'), '--no-watch', '--drain-timeout', '1s'],
    startTimeoutMs: 60_000,
  });
  procs.push(t);
  const started = await waitForLog(t, /"msg":"turret workers started".*?"pids":\[[\d,]+\]/, 0, 60_000);
  const pids = JSON.parse(/"pids":(\[[\d,]+\])/.exec(started)?.[1] ?? '[]') as number[];
  assert.equal(pids.length, 2);
  const token = /HTTP_PROXY='http:\/\/agent-a:([^@]+)@/.exec((await t.cli(['env', '--agent', 'agent-a'])).stdout)?.[1] ?? '';
  await denyUntilStuck(t, token, pids);
  const stopped = new Promise<number | null>((resolve) => t.proc.once('exit', (code) => resolve(code)));
  t.proc.kill('SIGTERM');
  const code = await stopped;
  for (const fd of fds) closeSync(fd);
  assert.equal(code, 1, t.stderr());
  assert.equal(t.stderr().match(/"msg":"audit log did not finish writing before the shutdown deadline/g)?.length, 2, t.stderr());
  assert.match(t.stderr(), /"msg":"stopped: every worker has exited"/);
});
