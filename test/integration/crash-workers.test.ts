/**
 * Worker mode (`turret start --workers 2`) when its supervision goes wrong (attack review,
 * crashrev2). A primary that dies (SIGKILL, a crash) used to take its workers with it at once:
 * node:cluster exits a worker whose IPC channel closes, so a request under way was cut with no
 * audit record at all. Now each worker drains as on SIGTERM and exits; a SIGTERM to the primary
 * with a request in flight lets it finish, then everything exits 0. What the drain is left with
 * when the work in it never ends on its own, and a primary that dies while its workers start
 * (attack review of that fix, crashrev3): a WebSocket session ends at the drain deadline with its
 * record, and no worker is left serving unsupervised.
 */
import { afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { agentToken, startTurret, until, waitForLog, type TurretProc } from '../helpers/turret.js';
import { basicAuth } from '../helpers/raw-proxy.js';
import { plainWsRules } from '../helpers/rules.js';
import { countedServer, readHead, type CountedServer } from '../helpers/counted-server.js';
import { proxiedGet, proxiedUpgrade, switching } from '../helpers/ws-wire.js';

let t: TurretProc | undefined;
let up: CountedServer | undefined;
let pids: number[] = [];

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

afterEach(async () => {
  await t?.stop();
  for (const p of pids) if (alive(p)) process.kill(p, 'SIGKILL');
  up?.server.close();
});

/**
 * Turret with two workers (`args` added), `up` as its upstream, and a client that sent what
 * `request` makes of the upstream's port and an agent's credentials; what it has read is `got`.
 */
async function twoWorkers(upstream: CountedServer, request: (port: number, auth: string) => string, args: string[] = []): Promise<{ got: () => string; client: net.Socket }> {
  up = upstream;
  t = await startTurret({ rules: { 'r.yaml': plainWsRules() }, args: ['--workers', '2', '--no-watch', ...args], startTimeoutMs: 60_000 });
  const started = await waitForLog(t, /"msg":"turret workers started".*?"pids":\[[\d,]+\]/, 0, 60_000);
  pids = JSON.parse(/"pids":(\[[\d,]+\])/.exec(started)?.[1] ?? '[]') as number[];
  assert.equal(pids.length, 2);
  const auth = basicAuth('a', await agentToken(t, 'a'));
  const client = net.connect(t.port, '127.0.0.1');
  client.on('error', () => undefined);
  await once(client, 'connect');
  let got = '';
  client.on('data', (c: Buffer) => (got += c.toString('latin1')));
  client.write(request(upstream.port, auth));
  return { got: () => got, client };
}

/** Turret with two workers, a request held at the upstream, and what its client has read. */
async function heldRequest(): Promise<{ held: net.Socket; got: () => string; client: net.Socket }> {
  const held: net.Socket[] = [];
  const { got, client } = await twoWorkers(await countedServer((s) => s.once('data', () => held.push(s))), (port, auth) => proxiedGet(`ws.turret.test:${port}`, '/held', auth));
  await until(() => held.length === 1, 'the request at the upstream');
  return { held: held[0] as net.Socket, got, client };
}

/** Every record in both workers' chains. */
function records(tp: TurretProc): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const k of [1, 2]) {
    const f = tp.auditPath.replace(/\.jsonl$/, `.w${k}.jsonl`);
    if (existsSync(f)) for (const l of readFileSync(f, 'utf8').split('\n').filter(Boolean)) out.push(JSON.parse(l) as Record<string, unknown>);
  }
  return out;
}

async function answeredAndRecorded(tp: TurretProc, held: net.Socket, got: () => string): Promise<void> {
  held.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  await until(
    () => /\r\n\r\nok$/.test(got()),
    () => `the response at the client: ${JSON.stringify(got())}`,
  );
  assert.match(got(), /^HTTP\/1\.1 200 /);
  await until(
    () => pids.every((p) => !alive(p)),
    () => `both workers to exit: ${pids.filter(alive).join(', ')} still run\n${tp.stderr().slice(-2000)}`,
  );
  const held1 = records(tp).filter((r) => r.path === '/held');
  assert.equal(held1.length, 1, JSON.stringify(held1));
  assert.equal(held1[0]?.outcome, 'completed');
  assert.equal(held1[0]?.status, 200);
}

it('the primary SIGKILLed with a request in flight: the request finishes, has its record, and both workers drain and exit', async () => {
  const { held, got, client } = await heldRequest();
  const tp = t as TurretProc;
  tp.proc.kill('SIGKILL');
  await once(tp.proc, 'exit');
  await waitForLog(tp, /"msg":"stopping: draining connections","signal":"primary gone"/);
  assert.equal(client.closed, false, 'the request is still under way');
  await answeredAndRecorded(tp, held, got);
  assert.equal((tp.stderr().match(/"msg":"stopped","clean":true/g) ?? []).length, 2, tp.stderr().slice(-2000));
});

it('SIGTERM to the primary with a request in flight: the request finishes and has its record, everything exits 0', async () => {
  const { held, got } = await heldRequest();
  const tp = t as TurretProc;
  const exited = once(tp.proc, 'exit');
  tp.proc.kill('SIGTERM');
  await waitForLog(tp, /"msg":"stopping: draining connections","signal":"SIGTERM"/);
  await answeredAndRecorded(tp, held, got);
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0, tp.stderr().slice(-2000));
});

it('the primary SIGKILLed with a WebSocket session open: the session ends at the drain deadline with its record, both workers exit', async () => {
  const { got, client } = await twoWorkers(
    await countedServer((s) => readHead(s, (head) => s.write(switching(head)))),
    (port, auth) => proxiedUpgrade(`ws.turret.test:${port}`, '/ws-orphan', auth),
    ['--drain-timeout', '1s'],
  );
  await until(
    () => got().includes('101 Switching Protocols'),
    () => `the 101: ${JSON.stringify(got())}`,
  );
  const tp = t as TurretProc;
  tp.proc.kill('SIGKILL');
  await once(tp.proc, 'exit');
  await until(() => client.closed, 'the session to end at the drain deadline');
  await until(
    () => pids.every((p) => !alive(p)),
    () => `both workers to exit: ${pids.filter(alive).join(', ')} still run\n${tp.stderr().slice(-2000)}`,
  );
  const ws = records(tp).filter((r) => r.path === '/ws-orphan');
  assert.equal(ws.length, 1, JSON.stringify(ws));
  assert.equal(ws[0]?.status, 101, JSON.stringify(ws[0]));
  assert.match(tp.stderr(), /"msg":"stopped","clean":false,"forced_connections":1/);
});

it('the primary SIGKILLed while its workers start: each exits, none is left serving unsupervised', async () => {
  t = await startTurret({ rules: { 'r.yaml': plainWsRules() }, args: ['--workers', '2', '--no-watch'], startTimeoutMs: 60_000 });
  const tp = t;
  // The first worker says it started; the other may be anywhere in its start.
  await waitForLog(tp, /"msg":"turret started"/, 0, 60_000);
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(tp.proc.pid)], { encoding: 'utf8' })
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
  assert.equal(children.length, 2, 'two workers forked');
  pids = children;
  tp.proc.kill('SIGKILL');
  await once(tp.proc, 'exit');
  await until(
    () => children.every((p) => !alive(p)),
    () => `both workers to exit: ${children.filter(alive).join(', ')} still run\n${tp.stderr().slice(-2000)}`,
  );
});
