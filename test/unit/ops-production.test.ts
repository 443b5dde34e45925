/** Production-mode checks over gathered facts: each insecure setting, hostile spellings, and the refusal text. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { enforceSetup, isDefaultStoreKey, isLoopback, productionFromEnv, setupProblems, type SetupFacts } from '../../src/cli/production.js';

function facts(over: Partial<SetupFacts> = {}): SetupFacts {
  return {
    caKeyMode: 0o600,
    caKeyPath: '/srv/turret/ca/ca.key',
    keyFileMode: 0o600,
    keyFilePath: '/srv/turret/ca/turret.key',
    proxyListen: { host: '127.0.0.1', port: 8750 },
    adminListen: { host: '127.0.0.1', port: 8751 },
    adminToken: null,
    agents: [{ name: 'a', hasCredential: true }],
    auditOff: false,
    storeKeyEnv: undefined,
    ...over,
  };
}

const ids = (f: SetupFacts): string[] => setupProblems(f).map((p) => p.id);

describe('production checks', () => {
  it('a secure default setup has no problems', () => {
    assert.deepEqual(ids(facts()), []);
    assert.deepEqual(ids(facts({ storeKeyEnv: randomBytes(32).toString('base64') })), []);
  });

  it('CA key or key file readable by group or others', () => {
    for (const mode of [0o640, 0o604, 0o644, 0o660, 0o666, 0o700 | 0o010]) {
      assert.deepEqual(ids(facts({ caKeyMode: mode })), ['ca_key_mode'], mode.toString(8));
    }
    assert.deepEqual(ids(facts({ caKeyMode: 0o400 })), []);
    assert.deepEqual(ids(facts({ keyFileMode: 0o644 })), ['key_file_mode']);
    const p = setupProblems(facts({ caKeyMode: 0o644 }))[0];
    assert.match(p?.problem ?? '', /0?644/);
    assert.match(p?.fix ?? '', /chmod 600 \/srv\/turret\/ca\/ca\.key/);
  });

  it('admin beyond loopback needs a token; a short token is refused too', () => {
    for (const host of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.2', 'turret.internal', '128.0.0.1', '::ffff:10.0.0.1']) {
      assert.deepEqual(ids(facts({ adminListen: { host, port: 8751 } })), ['admin_open'], host);
    }
    assert.deepEqual(ids(facts({ adminListen: { host: '0.0.0.0', port: 8751 }, adminToken: 'x'.repeat(32) })), []);
    assert.deepEqual(ids(facts({ adminListen: { host: '0.0.0.0', port: 8751 }, adminToken: 'short' })), ['admin_token_weak']);
    assert.deepEqual(ids(facts({ adminListen: null })), [], 'admin off is fine');
  });

  it('proxy beyond loopback needs every agent to have a credential', () => {
    const open = { host: '0.0.0.0', port: 8750 };
    assert.deepEqual(ids(facts({ proxyListen: open })), []);
    assert.deepEqual(
      ids(
        facts({
          proxyListen: open,
          agents: [
            { name: 'a', hasCredential: true },
            { name: 'b', hasCredential: false },
          ],
        }),
      ),
      ['proxy_open_without_auth'],
    );
    assert.match(setupProblems(facts({ proxyListen: open, agents: [{ name: 'b', hasCredential: false }] }))[0]?.problem ?? '', /agent\(s\) b/);
    assert.deepEqual(ids(facts({ proxyListen: open, agents: [] })), ['proxy_open_without_auth']);
    assert.deepEqual(ids(facts({ agents: [{ name: 'b', hasCredential: false }] })), [], 'on loopback the missing credential only fails closed (407)');
  });

  it('audit off', () => {
    assert.deepEqual(ids(facts({ auditOff: true })), ['audit_off']);
  });

  it('store key placeholders and low-entropy keys', () => {
    const weak = [
      'changeme',
      'CHANGEME',
      ' changeme ',
      'change-me',
      'ChangeMe123',
      'replace_me',
      'default',
      'secret',
      'password',
      'test',
      '',
      Buffer.alloc(32).toString('base64'),
      Buffer.alloc(32, 0xff).toString('base64'),
      Buffer.from('changeme'.repeat(4)).toString('base64'),
      Buffer.from('this-is-my-turret-store-key-1234').toString('base64'),
      Buffer.from('abab'.repeat(8)).toString('base64'),
    ];
    for (const k of weak) assert.equal(isDefaultStoreKey(k), true, JSON.stringify(k));
    for (let i = 0; i < 50; i++) assert.equal(isDefaultStoreKey(randomBytes(32).toString('base64')), false);
    assert.deepEqual(ids(facts({ storeKeyEnv: 'changeme' })), ['store_key_default']);
  });

  it('loopback spellings', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '::ffff:127.0.0.1']) assert.equal(isLoopback(h), true, h);
    for (const h of ['0.0.0.0', '', '::', '127.0.0.1.nip.io', 'localhost.evil.test', '::ffff:10.0.0.1', '1.127.0.0']) assert.equal(isLoopback(h), false, h);
  });

  it('production throws one line per problem with its fix; development returns them', () => {
    const bad = facts({ caKeyMode: 0o644, auditOff: true, adminListen: { host: '0.0.0.0', port: 1 }, storeKeyEnv: 'changeme' });
    assert.throws(
      () => enforceSetup(bad, true),
      (e: Error) => {
        assert.equal(e.name, 'UsageError', 'exit code 2');
        assert.match(e.message, /^production mode refuses to start:/);
        assert.equal(e.message.split('\n').filter((l) => l.startsWith('  - ')).length, 4);
        assert.ok(
          e.message
            .split('\n')
            .slice(1)
            .every((l) => l.includes('; fix: ')),
        );
        assert.ok(!e.message.includes('changeme'), 'the store key value is never printed');
        return true;
      },
    );
    assert.equal(enforceSetup(bad, false).length, 4);
    assert.doesNotThrow(() => enforceSetup(facts(), true));
  });

  it('TURRET_PRODUCTION spellings', () => {
    assert.equal(productionFromEnv(undefined, { TURRET_PRODUCTION: '1' }), true);
    assert.equal(productionFromEnv(undefined, { TURRET_PRODUCTION: 'TRUE' }), true);
    assert.equal(productionFromEnv(undefined, { TURRET_PRODUCTION: '0' }), false);
    assert.equal(productionFromEnv(undefined, {}), false);
    assert.equal(productionFromEnv(true, {}), true);
  });
});
