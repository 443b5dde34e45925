/**
 * The decision keeps only what depends on the rules themselves (a rule's label and allow reason,
 * made once per rule object: policy/decide.ts), and is made again for every request. A reload
 * between two requests on one keep-alive connection inside one intercepted tunnel must show in
 * the second request's answer and audit record: a renamed rule's new name, then a deny, then an
 * allow again, each request under the rules loaded when it arrived.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { agentToken, startTurret, until, waitForLog, type TurretProc } from '../helpers/turret.js';
import { basic } from '../helpers/ops.js';
import { LOOPBACK, writeRules, type Rule, type RuleFile } from '../helpers/rules.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { keepAliveTunnel } from '../helpers/tunnel-client.js';

const rules = (allow: string, extra: Rule[] = []): RuleFile => ({
  agents: ['agent-a'],
  rules: [{ name: allow, methods: ['read'], hosts: ['echo.turret.test:*'], unsafe_addresses: LOOPBACK }, ...extra],
  local: ['echo.turret.test'],
});

describe('a rule reload between two requests of one keep-alive connection', () => {
  let t: TurretProc;
  let secure: Upstream;
  let auth: string;

  before(async () => {
    secure = await startUpstream();
    t = await startTurret({ rules: { 'main.yaml': rules('first-name') } });
    auth = basic('agent-a', await agentToken(t, 'agent-a'));
  });

  after(async () => {
    await t?.stop();
    await secure?.close();
  });

  it('decides each request under the rules of its own time, and the audit record says so', async () => {
    const ca = readFileSync(path.join(t.caDir, 'ca.crt'));
    const tunnel = keepAliveTunnel({ proxyPort: t.port, auth, host: 'echo.turret.test', port: secure.port, ca });
    const get = tunnel.get;
    const reload = async (file: RuleFile): Promise<void> => {
      const mark = t.stderr().length;
      writeRules(t.rulesDir, { 'main.yaml': file });
      await waitForLog(t, /"msg":"rules reloaded/, mark);
    };

    const answers = [await get('/a')];
    await reload(rules('second-name'));
    answers.push(await get('/b'));
    await reload(rules('second-name', [{ name: 'stop-c', action: 'deny', methods: 'any', hosts: ['echo.turret.test:*'], paths: ['/c'] }]));
    answers.push(await get('/c'));
    await reload(rules('first-name'));
    answers.push(await get('/d'));
    tunnel.close();

    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 403, 200],
    );
    assert.match(answers[2]!.body, /denied by rule stop-c/);
    assert.equal(tunnel.tunnels(), 1, 'all four requests used the one tunnel and its one connection');

    await until(() => t.audit().filter((r) => r.event === 'request').length === 4, 'the four request records');
    const recs = t.audit().filter((r) => r.event === 'request');
    assert.deepEqual(
      recs.map((r) => [r.path, r.outcome]),
      [
        ['/a', 'completed'],
        ['/b', 'completed'],
        ['/c', 'denied'],
        ['/d', 'completed'],
      ],
    );
    assert.match(String(recs[0]!.reason), /^allowed by rule first-name \(/);
    assert.match(String(recs[1]!.reason), /^allowed by rule second-name \(/);
    assert.match(String(recs[2]!.reason), /^denied by rule stop-c \(/);
    assert.match(String(recs[3]!.reason), /^allowed by rule first-name \(/);
    assert.equal(new Set(recs.map((r) => r.tunnel_id)).size, 1);
    assert.equal(new Set(recs.map((r) => r.client)).size, 1);
  });
});
