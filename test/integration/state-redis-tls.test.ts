/**
 * Shared state over TLS with a password, like a production Redis: `rediss://` with the
 * operator's CA file and the password from an environment variable. The certificate is checked
 * (without ca_file the system roots do not know the test CA, and nothing is shared), a wrong
 * password is refused, and the password never appears in Turret's output or audit log.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { curl } from '../helpers/curl.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { agentToken, startTurret, waitForLog, type TurretProc } from '../helpers/turret.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';
import { startUpstream, UPSTREAM_CA_FILE, type Upstream } from '../helpers/upstream.js';

const PASSWORD = `fake-redis-${randomBytes(16).toString('hex')}`;

const rules = (url: string, ca: boolean): RuleFile => ({
  agents: ['a'],
  rules: [{ name: 'limited', methods: ['read'], hosts: ['limited.turret.test:*'], unsafe_addresses: LOOPBACK, rate_limit: { requests: 2, per: '1h' } }],
  settings: { shared_state: { url, ...(ca ? { ca_file: UPSTREAM_CA_FILE } : {}), password: { env: 'T_REDIS_PASSWORD' } } },
  local: ['limited.turret.test'],
  testCa: false,
});

describe('shared state over TLS with a password', () => {
  let redis: RedisServer;
  let up: Upstream;
  const procs: TurretProc[] = [];
  const start = async (ca: boolean, password: string): Promise<TurretProc> => {
    const t = await startTurret({ rules: { 'main.yaml': rules(redis.url, ca) }, env: { T_REDIS_PASSWORD: password }, args: ['--no-watch'], startTimeoutMs: 60_000 });
    procs.push(t);
    return t;
  };

  before(async () => {
    redis = await startRedis({ tls: true, password: PASSWORD });
    up = await startUpstream({ tls: false });
  });

  after(async () => {
    for (const p of procs) await p.stop();
    await redis?.stop();
    await up?.close();
    for (const p of procs) {
      assert.ok(!(p.stdout() + p.stderr() + p.auditText()).includes(PASSWORD), 'the Redis password is never printed');
      rmSync(p.dir, { recursive: true, force: true });
    }
  });

  it('connects with the CA file and the password, and enforces limits through it', async () => {
    const t = await start(true, PASSWORD);
    await waitForLog(t, /"msg":"shared state connected","url":"rediss:\/\/localhost:\d+"/, 0, 30_000);
    const token = await agentToken(t, 'a');
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `a:${token}`, `http://limited.turret.test:${up.port}/`])).status);
    assert.deepEqual(statuses, [200, 200, 429]);
    assert.match(await redis.cli(['--scan', '--pattern', 'turret:rl:*']), /turret:rl:rule/);
  });

  it('does not share state with a server whose certificate it cannot verify, or with a wrong password', async () => {
    const noCa = await start(false, PASSWORD);
    assert.match(noCa.stderr(), /"msg":"shared state unreachable at start; serving limits and revocations from local state[^\n]*"error":"[^"]*(certificate|self.signed|issuer)/i);
    const wrong = await start(true, `wrong-${randomBytes(8).toString('hex')}`);
    assert.match(wrong.stderr(), /"msg":"shared state unreachable at start;[^\n]*"error":"WRONGPASS/);
  });
});
