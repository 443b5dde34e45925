/**
 * An operator's approval (action: ask) is one of the three waits left in the decide stage
 * (pipeline.ts); a request pipelined behind a pending one waits its turn (connection.ts waitTurn).
 * Through a real turret, a raw pipelined tunnel and the approvals CLI: each request gets its own
 * decision, answers stay in order, a client that leaves while asked cancels its entry, and every
 * exchange has exactly one record.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { basicAuth } from '../helpers/raw-proxy.js';
import { adminPort, httpGet } from '../helpers/ops.js';
import { agentToken, startTurret, until, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK } from '../helpers/rules.js';
import { errorCode, exchange, status, tunnel } from '../helpers/pipeline-sync.js';

const ADMIN_TOKEN = `adm_${randomBytes(16).toString('hex')}`;

describe('synchronous decide behind a pending approval', () => {
  let t: TurretProc;
  let up: Upstream;
  let auth: string;

  before(async () => {
    up = await startUpstream();
    t = await startTurret({
      rules: {
        'r.yaml': {
          agents: ['bot'],
          rules: [
            { name: 'reads', methods: ['read'], hosts: ['ask.turret.test:*'], unsafe_addresses: LOOPBACK },
            { name: 'ask-writes', action: 'ask', methods: ['POST'], hosts: ['ask.turret.test:*'], ask_timeout: '60s', unsafe_addresses: LOOPBACK },
          ],
          local: ['ask.turret.test'],
        },
      },
      env: { TURRET_ADMIN_TOKEN: ADMIN_TOKEN },
    });
    auth = basicAuth('bot', await agentToken(t, 'bot'));
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  const approvals = (args: string[]) => t.cli(['approvals', ...args, '--admin', `127.0.0.1:${adminPort(t)}`], { TURRET_ADMIN_TOKEN: ADMIN_TOKEN });
  const pending = async (): Promise<Array<{ id: string; state: string; path: string }>> =>
    (
      JSON.parse((await httpGet(adminPort(t), '/api/approvals', { authorization: `Bearer ${ADMIN_TOKEN}` })).body) as {
        approvals: Array<{ id: string; state: string; path: string }>;
      }
    ).approvals;
  /** Bounded: the approvals list is read (one admin round trip each) until `paths` are pending. */
  const pendingFor = async (paths: string[]): Promise<Map<string, string>> => {
    for (let i = 0; i < 200; i++) {
      const list = (await pending()).filter((a) => a.state === 'pending' && paths.includes(a.path));
      if (list.length === paths.length) return new Map(list.map((a) => [a.path, a.id]));
    }
    throw new Error(`no pending approvals for ${paths.join(', ')}`);
  };
  const records = (mark: string): Array<Record<string, unknown>> => t.audit().filter((r) => r.event === 'request' && String(r.path ?? '').startsWith(mark));
  const post = (p: string): string => `POST ${p} HTTP/1.1\r\nHost: ask.turret.test:${up.port}\r\nContent-Length: 1\r\n\r\nx`;
  const get = (p: string): string => `GET ${p} HTTP/1.1\r\nHost: ask.turret.test:${up.port}\r\n\r\n`;

  it('a GET pipelined between two asked POSTs starts after the first is decided and answered; each POST gets its own answer', async () => {
    const s = await tunnel(t, auth, 'ask.turret.test', up.port);
    const answers = exchange(s, post('/ask1') + get('/ask2') + post('/ask3'), 3);
    const first = await pendingFor(['/ask1']);
    // What is pipelined behind the asked POST waits its turn (connection.ts waitTurn: it could be
    // bytes after a close); before srvfix the GET went upstream while the POST was pending.
    assert.deepEqual(
      up.received.filter((x) => x.url === '/ask2' || x.url === '/ask3'),
      [],
    );
    assert.equal((await approvals(['allow', first.get('/ask1') ?? '', '--as', 'alice'])).code, 0);
    const third = await pendingFor(['/ask3']);
    assert.equal((await approvals(['deny', third.get('/ask3') ?? ''])).code, 0);
    const r = await answers;
    s.destroy();
    assert.deepEqual(r.responses.map(status), [200, 200, 403], r.raw);
    assert.equal(errorCode(r.responses[2]), 'approval_denied');
    assert.deepEqual(
      up.received
        .map((x) => x.url)
        .filter((u) => u.startsWith('/ask'))
        .sort(),
      ['/ask1', '/ask2'],
    );
    await until(() => records('/ask').length >= 3, 'three records');
    assert.deepEqual(
      records('/ask')
        .map((x) => [x.path, x.code ?? null])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [
        ['/ask1', null],
        ['/ask2', null],
        ['/ask3', 'approval_denied'],
      ],
    );
  });

  it('a client that leaves while its POST is asked and a GET waits behind it: one record each, the GET never forwarded', async () => {
    const s = await tunnel(t, auth, 'ask.turret.test', up.port);
    s.on('data', () => {});
    s.write(post('/gone1') + get('/gone2'));
    await pendingFor(['/gone1']);
    s.destroy();
    await until(
      () => records('/gone').length >= 2,
      () => JSON.stringify(t.audit().slice(-3)),
    );
    const recs = records('/gone');
    assert.equal(recs.filter((x) => x.path === '/gone1').length, 1);
    assert.equal(recs.filter((x) => x.path === '/gone2').length, 1);
    assert.equal(recs.find((x) => x.path === '/gone1')?.code, 'approval_cancelled');
    // It waited its turn behind the asked one: run once the client had left, never forwarded.
    assert.equal(recs.find((x) => x.path === '/gone2')?.code, 'client_closed', JSON.stringify(recs));
    assert.deepEqual(
      up.received.filter((x) => x.url === '/gone2'),
      [],
    );
    assert.equal((await pending()).filter((a) => a.path === '/gone1' && a.state === 'pending').length, 0, 'the entry is no longer pending');
  });
});
