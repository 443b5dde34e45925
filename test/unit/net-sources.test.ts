/**
 * Source-address identity: range parsing, the one-address-one-agent rule at load time, the
 * lookup (IPv4-mapped clients by their IPv4), identify's precedence (a credential, when sent,
 * decides alone), and the production check for wildcard listeners.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/yaml.js';
import { TurretError } from '../../src/core/errors.js';
import { clientAddress, parseSourceRange, rangesOverlap, sourceTableFor } from '../../src/net/sources.js';
import { identifyAgent } from '../../src/proxy/stages/identify.js';
import { setupProblems, isWildcard, type SetupFacts } from '../../src/cli/production.js';
import type { KeyRing } from '../../src/secrets/keys.js';
import type { SecretValues } from '../../src/secrets/sources.js';

const load = (yaml: string, more: Record<string, string> = {}) =>
  compilePolicy([{ file: 'rules/a.yaml', text: yaml }, ...Object.entries(more).map(([file, text]) => ({ file, text }))]);

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split('\n');
    throw e;
  }
  return [];
}

describe('parseSourceRange', () => {
  it('accepts IPv4 and IPv6 CIDRs and bare addresses, in canonical form', () => {
    assert.equal(parseSourceRange('10.88.0.0/24').cidr, '10.88.0.0/24');
    assert.equal(parseSourceRange('fd00:88:0::/64').cidr, 'fd00:88::/64');
    assert.equal(parseSourceRange('10.88.0.7').cidr, '10.88.0.7/32');
    assert.equal(parseSourceRange('fd00::7').cidr, 'fd00::7/128');
  });

  it('refuses odd spellings, host bits, /0, zones, mapped ranges and junk', () => {
    for (const bad of [
      '10.88.0.1/24',
      '0.0.0.0/0',
      '::/0',
      '10.1/16',
      '012.0.0.0/8',
      '0x0a.0.0.0/8',
      '167772160/8',
      'fe80::1%eth0/128',
      '::ffff:10.0.0.0/104',
      '::ffff:0:0/96',
      '::/8',
      '10.0.0.0/33',
      '10.0.0.0/',
      '',
      ' ',
      'example.com',
      '10.0.0.0/24/1',
      '10.0.0.0/+8',
    ]) {
      assert.throws(() => parseSourceRange(bad), Error, `should refuse ${JSON.stringify(bad)}`);
    }
  });

  it('detects overlap only within a family', () => {
    const a = parseSourceRange('10.88.0.0/16');
    assert.equal(rangesOverlap(a, parseSourceRange('10.88.3.0/24')), true);
    assert.equal(rangesOverlap(parseSourceRange('10.88.3.0/24'), a), true);
    assert.equal(rangesOverlap(a, parseSourceRange('10.89.0.0/16')), false);
    assert.equal(rangesOverlap(a, parseSourceRange('fd00::/64')), false);
  });
});

describe('client address lookup', () => {
  const p = load(`
agents:
  - name: builder
    sources: [10.88.0.0/24, "fd00:88::/64"]
  - name: tester
    sources: 10.88.1.5
  - name: plain
`);
  const table = sourceTableFor(p.agents);

  it('matches IPv4, IPv6 and IPv4-mapped IPv6 clients (dual-stack listeners) by their address', () => {
    assert.equal(table.lookup('10.88.0.17')?.agent, 'builder');
    assert.equal(table.lookup('::ffff:10.88.0.17')?.agent, 'builder');
    assert.equal(table.lookup('fd00:88::42')?.agent, 'builder');
    assert.equal(table.lookup('fd00:88::42%veth0')?.agent, 'builder');
    assert.equal(table.lookup('10.88.1.5')?.agent, 'tester');
  });

  it('knows nobody else, and nothing that does not parse', () => {
    for (const a of ['10.88.1.6', '10.88.2.1', 'fd00:89::1', '::ffff:10.88.1.6', '127.0.0.1', '::1', '', undefined, 'garbage', '10.88.0.17.1', '::10.88.0.17']) {
      assert.equal(table.lookup(a), null, `${String(a)} is no agent`);
    }
    assert.equal(clientAddress('::ffff:10.0.0.1')?.kind(), 'ipv4');
  });

  it('is built once per loaded policy', () => {
    assert.equal(sourceTableFor(p.agents), table);
    assert.equal(table.size, 3);
  });
});

describe('sources: at load time', () => {
  it('is a file:line error when invalid', () => {
    const out = problems(() => load(`agents:\n  - name: a\n    sources: [10.0.0.1/8]\n`));
    assert.equal(out.length, 1);
    assert.match(out[0] ?? '', /^rules\/a\.yaml:3:\d+: .*host bits set; did you mean 10\.0\.0\.0\/8/);
  });

  it('refuses a range that overlaps another agent’s, across files, naming both', () => {
    const out = problems(() => load(`agents:\n  - name: a\n    sources: [10.88.0.0/16]\n`, { 'rules/b.yaml': `agents:\n  - name: b\n    sources: [10.88.7.0/24]\n` }));
    assert.equal(out.length, 1);
    assert.match(out[0] ?? '', /^rules\/b\.yaml:3:\d+: .*10\.88\.7\.0\/24 overlaps 10\.88\.0\.0\/16 of agent "a" \(rules\/a\.yaml:2\)/);
  });

  it('refuses overlapping ranges of one agent and a /0', () => {
    assert.equal(problems(() => load(`agents:\n  - name: a\n    sources: [10.88.0.0/16, 10.88.1.1]\n`)).length, 1);
    assert.equal(problems(() => load(`agents:\n  - name: a\n    sources: [0.0.0.0/0]\n`)).length, 1);
  });

  it('defaults to no sources', () => {
    assert.deepEqual(load(`agents:\n  - name: a\n`).agents.get('a')?.sources, []);
  });
});

describe('identify with sources', () => {
  const p = load(`agents:\n  - name: builder\n    sources: [10.88.0.0/24]\n  - name: other\n`);
  const ring = { agentKey: Buffer.alloc(32, 7) } as unknown as KeyRing;
  // Every token source resolves to null here: only the derived credential path would need the ring.
  const values = { load: () => null } as unknown as SecretValues;
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      return (e as TurretError).code;
    }
    return 'none';
  };

  it('uses the source address when no credential is sent', () => {
    assert.equal(identifyAgent({}, p, ring, values, '10.88.0.9'), 'builder');
    assert.equal(identifyAgent({}, p, ring, values, '::ffff:10.88.0.9'), 'builder');
  });

  it('407s unknown addresses, and never falls back from a wrong or malformed credential', () => {
    assert.equal(
      code(() => identifyAgent({}, p, ring, values, '10.88.1.9')),
      'proxy_auth_required',
    );
    assert.equal(
      code(() => identifyAgent({}, p, ring, values, undefined)),
      'proxy_auth_required',
    );
    const wrong = `Basic ${Buffer.from('builder:nope').toString('base64')}`;
    assert.equal(
      code(() => identifyAgent({ 'proxy-authorization': wrong }, p, ring, values, '10.88.0.9')),
      'proxy_auth_invalid',
    );
    assert.equal(
      code(() => identifyAgent({ 'proxy-authorization': 'Bearer x' }, p, ring, values, '10.88.0.9')),
      'proxy_auth_invalid',
    );
    assert.equal(
      code(() => identifyAgent({ 'proxy-authorization': '' }, p, ring, values, '10.88.0.9')),
      'none',
      'an empty header is no credential',
    );
  });
});

describe('production: source identities on a wildcard listener', () => {
  const facts = (over: Partial<SetupFacts>): SetupFacts => ({
    caKeyMode: 0o600,
    caKeyPath: 'ca/ca.key',
    keyFileMode: 0o600,
    keyFilePath: 'ca/turret.key',
    proxyListen: { host: '10.88.0.1', port: 8750 },
    adminListen: null,
    adminToken: null,
    agents: [{ name: 'builder', hasCredential: true }],
    auditOff: false,
    storeKeyEnv: undefined,
    sourceAgents: ['builder'],
    ...over,
  });
  const ids = (f: SetupFacts) => setupProblems(f).map((x) => x.id);

  it('is a problem on 0.0.0.0 or :: (proxy or transparent) unless the operator vouches for the network', () => {
    assert.deepEqual(ids(facts({})), []);
    assert.deepEqual(ids(facts({ proxyListen: { host: '0.0.0.0', port: 8750 } })), ['source_identity_wildcard']);
    assert.deepEqual(ids(facts({ transparentListen: { host: '::', port: 8753 } })), ['source_identity_wildcard']);
    assert.deepEqual(ids(facts({ transparentListen: { host: '0:0:0:0:0:0:0:0', port: 8753 } })), ['source_identity_wildcard']);
    assert.deepEqual(ids(facts({ proxyListen: { host: '0.0.0.0', port: 8750 }, trustSourceAddresses: true })), []);
    assert.deepEqual(ids(facts({ proxyListen: { host: '0.0.0.0', port: 8750 }, sourceAgents: [] })), []);
    assert.equal(isWildcard('[::]'), true);
    assert.equal(isWildcard('127.0.0.1'), false);
  });
});
