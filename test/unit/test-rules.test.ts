/**
 * test/helpers/rules.ts, the one writer of the tests' rule files: what `local`, `testCa` and
 * agent names expand to, and that the YAML it writes is a policy Turret's own loader accepts.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { compilePolicy } from '../../src/config/load.js';
import { LOOPBACK, makeDirs, ruleFile } from '../helpers/rules.js';
import { UPSTREAM_CA_FILE } from '../helpers/upstream.js';

it('local names resolve to loopback (or the address given) and the test CA is trusted', () => {
  const doc = parse(
    ruleFile({
      agents: ['a', { name: 'b', token: { env: 'B_TOKEN' } }],
      rules: [{ name: 'r', methods: ['read'], hosts: ['echo.turret.test:*', 'web.turret.test:*'], unsafe_addresses: [...LOOPBACK, '127.9.9.9/32'] }],
      settings: { taint_ttl: '1s', dns_hosts: { 'given.turret.test': ['127.0.0.1'] } },
      local: { 'echo.turret.test': '127.0.0.1', 'web.turret.test': '127.9.9.9' },
    }),
  ) as Record<string, unknown>;
  assert.deepEqual(doc, {
    agents: [{ name: 'a' }, { name: 'b', token: { env: 'B_TOKEN' } }],
    rules: [{ name: 'r', methods: ['read'], hosts: ['echo.turret.test:*', 'web.turret.test:*'], unsafe_addresses: ['127.0.0.1/32', '127.9.9.9/32'] }],
    settings: {
      upstream_ca_file: UPSTREAM_CA_FILE,
      taint_ttl: '1s',
      dns_hosts: { 'given.turret.test': ['127.0.0.1'], 'echo.turret.test': ['127.0.0.1'], 'web.turret.test': ['127.9.9.9'] },
    },
  });
  assert.deepEqual(parse(ruleFile({ agents: ['a'], local: ['x.turret.test'], testCa: false })), {
    agents: [{ name: 'a' }],
    settings: { dns_hosts: { 'x.turret.test': ['127.0.0.1'] } },
  });
  assert.deepEqual(parse(ruleFile({ agents: ['a'], rules: [], testCa: false })), { agents: [{ name: 'a' }], rules: [] });
});

it('what it writes loads without a problem; text is written as it is', () => {
  const text = 'agents: [{ name: x }]\n# a comment the test may rely on\n';
  const d = makeDirs({
    'a.yaml': {
      agents: ['a'],
      secrets: [{ name: 's', from: { env: 'T_S' }, hosts: ['echo.turret.test:*'], env: 'S_TOKEN' }],
      rules: [
        { name: 'r', methods: 'any', hosts: ['echo.turret.test:*'], unsafe_addresses: LOOPBACK, rate_limit: { requests: 2, per: '1m' } },
        { name: 'q', methods: ['read'], hosts: ['other.turret.test:*'], unsafe_addresses: LOOPBACK },
      ],
      local: ['echo.turret.test'],
    },
    'b.yaml': text,
  });
  assert.equal(readFileSync(path.join(d.rulesDir, 'b.yaml'), 'utf8'), text);
  const written = readFileSync(path.join(d.rulesDir, 'a.yaml'), 'utf8');
  assert.doesNotMatch(written, /[&*]a\d/, 'a value used twice is written twice, not as a YAML alias (the loader refuses those)');
  const policy = compilePolicy([{ file: 'a.yaml', text: written }]);
  assert.equal(policy.settings.upstreamCaFile, UPSTREAM_CA_FILE);
  assert.deepEqual(policy.settings.dnsHosts['echo.turret.test'], ['127.0.0.1']);
  assert.deepEqual([...policy.agents.keys()], ['a']);
  assert.equal(policy.rules.length, 2);
});
