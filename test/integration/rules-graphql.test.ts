/**
 * The GraphQL catalog through the real proxy: under a read-only policy with `catalog: [graphql]`,
 * a POST carrying a query is a read and reaches the upstream with its body intact; a mutation
 * (also hidden in a batch) is a write and is refused before any byte is sent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { curl } from '../helpers/curl.js';
import { startTurret, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK } from '../helpers/rules.js';

describe('GraphQL queries are reads, mutations are writes', () => {
  let t: TurretProc;
  let up: Upstream;
  const post = (body: string) =>
    curl([
      '-x',
      `http://127.0.0.1:${t.port}`,
      '--proxy-user',
      'a:fake-agent-token-gql',
      '--cacert',
      path.join(t.caDir, 'ca.crt'),
      '-H',
      'content-type: application/json',
      '--data-binary',
      body,
      `https://api.turret.test:${up.port}/graphql`,
    ]);

  before(async () => {
    up = await startUpstream();
    t = await startTurret({
      env: { AGENT_TOKEN: 'fake-agent-token-gql' },
      rules: {
        'r.yaml': {
          agents: [{ name: 'a', token: { env: 'AGENT_TOKEN' } }],
          rules: [{ name: 'read-only-api', methods: ['read'], hosts: ['api.turret.test:*'], catalog: ['graphql'], unsafe_addresses: LOOPBACK }],
          local: ['api.turret.test'],
        },
      },
    });
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  it('forwards a query with its body intact', async () => {
    const body = JSON.stringify({ query: 'query Viewer { viewer { login } }' });
    const r = await post(body);
    assert.equal(r.status, 200, r.raw);
    assert.equal(up.received.at(-1)?.body, body, 'the peeked body was forwarded whole');
  });

  it('refuses a mutation, also inside a batch, and sends nothing', async () => {
    const before = up.received.length;
    for (const body of [
      JSON.stringify({ query: 'mutation { deleteRepository(id: 1) { id } }' }),
      JSON.stringify([{ query: '{ viewer { login } }' }, { query: 'mutation M { x }' }]),
    ]) {
      const r = await post(body);
      assert.equal(r.status, 403, r.raw);
      assert.equal(r.headers['x-turret-error'], 'policy_denied');
    }
    assert.equal(up.received.length, before);
  });
});
