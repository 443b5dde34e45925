/**
 * `turret start --workers 2`: two processes behind the same listen socket, sharing rate limits
 * through a real redis-server; each writes its own audit chain (audit.w1.jsonl, audit.w2.jsonl)
 * and `turret audit verify audit.jsonl` checks both. Production refuses --workers without
 * shared state (each worker would enforce a limit on its own).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { curl } from '../helpers/curl.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { agentToken, makeDirs, runCli, startTurret, waitForLog, type TurretProc } from '../helpers/turret.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** `sharedUrl`: the redis both workers share (none: each would count on its own). */
const rules = (sharedUrl?: string): RuleFile => ({
  agents: ['a'],
  rules: [
    { name: 'echo', methods: ['read'], hosts: ['echo.turret.test:*'], unsafe_addresses: LOOPBACK },
    { name: 'limited', methods: ['read'], hosts: ['limited.turret.test:*'], unsafe_addresses: LOOPBACK, rate_limit: { requests: 4, per: '1h' } },
  ],
  settings: sharedUrl ? { shared_state: { url: sharedUrl } } : {},
  local: ['echo.turret.test', 'limited.turret.test'],
  testCa: false,
});

describe('turret start --workers 2', () => {
  let redis: RedisServer;
  let up: Upstream;
  let t: TurretProc;
  let token: string;
  const dirs: string[] = [];
  const chain = (k: number): string => t.auditPath.replace(/\.jsonl$/, `.w${k}.jsonl`);
  const lines = (f: string): number => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).length : 0);
  // curl opens a new connection each time, so cluster hands successive requests to both workers.
  const get = (host: string): Promise<number> =>
    curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `a:${token}`, `http://${host}.turret.test:${up.port}/`]).then((r) => r.status);

  before(async () => {
    redis = await startRedis();
    up = await startUpstream({ tls: false });
    t = await startTurret({ rules: { 'main.yaml': rules(redis.url) }, args: ['--workers', '2', '--no-watch'], startTimeoutMs: 60_000 }); // three processes start one after another
    dirs.push(t.dir);
    token = await agentToken(t, 'a');
  });

  after(async () => {
    await t?.stop();
    await redis?.stop();
    await up?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('both workers serve and share one rate limit', async () => {
    // Bounded: round robin gives the second connection to the other worker; 20 is ample.
    for (let i = 0; i < 20 && (lines(chain(1)) === 0 || lines(chain(2)) === 0); i++) assert.equal(await get('echo'), 200);
    assert.ok(lines(chain(1)) > 0 && lines(chain(2)) > 0, 'both workers wrote records');
    assert.ok(!existsSync(t.auditPath), 'no process writes the unsuffixed file');

    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push(await get('limited'));
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
  });

  it('a worker that exits is replaced and the new one continues its chain', async () => {
    const started = await waitForLog(t, /"msg":"turret workers started".*?"pids":\[[\d,]+\]/, 0, 60_000);
    const pids = JSON.parse(/"pids":(\[[\d,]+\])/.exec(started)?.[1] ?? '[]') as number[];
    assert.equal(pids.length, 2);
    const mark = t.stderr().length;
    process.kill(pids[1]!, 'SIGTERM'); // drains and exits 0, but the primary did not ask it to
    await waitForLog(t, /"msg":"worker exited; starting a new one","worker":2/, mark, 60_000);
    await waitForLog(t, /"msg":"turret started"/, mark, 60_000);
    const before = lines(chain(2));
    for (let i = 0; i < 20 && lines(chain(2)) === before; i++) assert.equal(await get('echo'), 200);
    assert.ok(lines(chain(2)) > before, 'the new worker 2 serves and writes to audit.w2.jsonl');
  });

  it('both chains verify after the primary stops every worker', async () => {
    await t.stop();
    const v = await runCli(['audit', 'verify', t.auditPath]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /audit\.w1\.jsonl: \d+ record\(s\), chain intact/);
    assert.match(v.stdout, /audit\.w2\.jsonl: \d+ record\(s\), chain intact/);
    assert.equal(t.proc.exitCode, 0, 'the primary exits 0 once both workers have drained');
  });

  it('a broken worker chain fails verify, naming its file', async () => {
    const f = chain(2);
    const text = readFileSync(f, 'utf8').split('\n');
    text[0] = text[0]!.replace('"agent":"a"', '"agent":"x"');
    writeFileSync(f, text.join('\n'));
    const v = await runCli(['audit', 'verify', t.auditPath]);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /audit\.w1\.jsonl: \d+ record\(s\), chain intact/);
    assert.match(v.stdout, /audit\.w2\.jsonl:1: modified/);
  });

  it('production refuses --workers without shared state (exit 2)', async () => {
    const d = makeDirs({ 'main.yaml': rules() });
    dirs.push(d.dir);
    const r = await runCli(['start', '--rules', d.rulesDir, '--ca', d.caDir, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2', '--production'], {
      cwd: d.dir,
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--workers 2 without settings\.shared_state/);
    assert.ok(!r.stderr.includes('turret started'));
  });
});
