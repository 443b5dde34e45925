/**
 * Worker mode (`turret start --workers 2`) when its supervision goes wrong (attack review,
 * crashrev2). A primary that dies (SIGKILL, a crash) used to take its workers with it at once:
 * node:cluster exits a worker whose IPC channel closes, so a request under way was cut with no
 * audit record at all. Now each worker drains as on SIGTERM and exits; a SIGTERM to the primary
 * with a request in flight lets it finish, then everything exits 0.
 */
import { afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { agentToken, startTurret, until, waitForLog, type TurretProc } from '../helpers/turret.js';
import { basicAuth } from '../helpers/raw-proxy.js';
import { plainWsRules } from '../helpers/rules.js';
import { countedServer, type CountedServer } from '../helpers/counted-server.js';

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

/** Turret with two workers, a request held at the upstream, and what its client has read. */
async function heldRequest(): Promise<{ held: net.Socket; got: () => string; client: net.Socket }> {
  const held: net.Socket[] = [];
  up = await countedServer((s) => s.once('data', () => held.push(s)));
  t = await startTurret({ rules: { 'r.yaml': plainWsRules() }, args: ['--workers', '2', '--no-watch'], startTimeoutMs: 60_000 });
  const started = await waitForLog(t, /"msg":"turret workers started".*?"pids":\[[\d,]+\]/, 0, 60_000);
  pids = JSON.parse(/"pids":(\[[\d,]+\])/.exec(started)?.[1] ?? '[]') as number[];
  assert.equal(pids.length, 2);
  const auth = basicAuth('a', await agentToken(t, 'a'));
  const client = net.connect(t.port, '127.0.0.1');
  client.on('error', () => undefined);
  await once(client, 'connect');
  let got = '';
  client.on('data', (c: Buffer) => (got += c.toString('latin1')));
  client.write(`GET http://ws.turret.test:${up.port}/held HTTP/1.1\r\nHost: ws.turret.test:${up.port}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
  await until(() => held.length === 1, 'the request at the upstream');
  return { held: held[0] as net.Socket, got: () => got, client };
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
