/**
 * The decision half of the guarded connect, without sockets: every answer is classified, one bad
 * answer refuses the whole name, the resolver is asked exactly once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkAddresses, orderCandidates, AddressForbiddenError } from '../../src/net/connect.js';
import { compileExceptions } from '../../src/net/exceptions.js';
import type { Classification } from '../../src/net/classify.js';
import type { Resolver } from '../../src/net/resolver.js';
import { isTurretError } from '../../src/core/errors.js';

/** A resolver that gives a different answer each call: the rebinding attacker's DNS. */
function rebinding(answers: string[][]): Resolver & { calls: number } {
  const r = {
    calls: 0,
    async resolve() {
      const a = answers[Math.min(r.calls, answers.length - 1)] ?? [];
      r.calls++;
      return a.map((address) => ({ address, family: (address.includes(':') ? 6 : 4) as 4 | 6 }));
    },
  };
  return r;
}

const forbidden = (cls: string) => (err: unknown) =>
  err instanceof AddressForbiddenError && err.code === 'dest_address_forbidden' && err.classification.class === cls && err.reason.includes(cls);

test('rebinding: public first, loopback second — refused, and the resolver is asked once', async () => {
  const resolver = rebinding([['93.184.216.34'], ['127.0.0.1']]);
  const first = await checkAddresses({ host: 'rebind.test', kind: 'name', resolver });
  assert.deepEqual(
    first.map((c) => c.address),
    ['93.184.216.34'],
  );
  await assert.rejects(checkAddresses({ host: 'rebind.test', kind: 'name', resolver }), forbidden('loopback'));
  assert.equal(resolver.calls, 2, 'one resolution per connect, never a second one inside');
});

test('one public and one loopback answer in the same response: the whole name is refused', async () => {
  for (const answers of [
    ['93.184.216.34', '127.0.0.1'],
    ['127.0.0.1', '93.184.216.34'],
    ['2606:4700::1', '::ffff:7f00:1'],
  ]) {
    const refused: Classification[] = [];
    const resolver = rebinding([answers]);
    await assert.rejects(checkAddresses({ host: 'mixed.test', kind: 'name', resolver, onRefused: (c) => refused.push(c) }), forbidden('loopback'));
    assert.equal(refused.length, 1);
    assert.equal(resolver.calls, 1);
  }
});

test('the refusal names the host and class but not the internal address a name resolved to', async () => {
  const resolver = rebinding([['10.20.30.40']]);
  const err = await checkAddresses({ host: 'secret-internal.test', kind: 'name', resolver }).catch((e: unknown) => e);
  assert.ok(err instanceof AddressForbiddenError);
  assert.equal(err.reason, 'secret-internal.test resolves to a refused address: private: private address (RFC 1918)');
  assert.ok(!err.reason.includes('10.20.30.40'));
  assert.equal(err.classification.address, '10.20.30.40', 'the audit record still gets it');
});

test('IP literals are classified directly, the resolver is never asked', async () => {
  const resolver = rebinding([['93.184.216.34']]);
  await assert.rejects(checkAddresses({ host: '169.254.169.254', kind: 'ipv4', resolver }), forbidden('metadata'));
  await assert.rejects(checkAddresses({ host: '::ffff:a9fe:a9fe', kind: 'ipv6', resolver }), forbidden('metadata'));
  assert.deepEqual(
    (await checkAddresses({ host: '8.8.8.8', kind: 'ipv4', resolver })).map((c) => c.class),
    ['public'],
  );
  assert.equal(resolver.calls, 0);
});

test('self addresses are refused; an exception opens only what it names', async () => {
  const self = new Set(['203.0.114.7']);
  await assert.rejects(checkAddresses({ host: 'me.test', kind: 'name', resolver: rebinding([['203.0.114.7']]), selfAddresses: self }), forbidden('self'));
  const permit = compileExceptions([{ cidrs: ['10.2.3.4/32'], unsafe: false }]);
  const ok = await checkAddresses({ host: 'internal.corp', kind: 'name', resolver: rebinding([['10.2.3.4', '8.8.8.8']]), permit });
  assert.deepEqual(
    ok.map((c) => c.class),
    ['private', 'public'],
  );
  await assert.rejects(checkAddresses({ host: 'internal.corp', kind: 'name', resolver: rebinding([['10.2.3.4', '10.2.3.5']]), permit }), forbidden('private'));
  await assert.rejects(checkAddresses({ host: 'internal.corp', kind: 'name', resolver: rebinding([['10.2.3.4', '127.0.0.1']]), permit }), forbidden('loopback'));
});

test('a resolver answer that is not an address fails closed', async () => {
  await assert.rejects(
    checkAddresses({ host: 'x.test', kind: 'name', resolver: rebinding([['8.8.8.8', 'localhost']]) }),
    (e: unknown) => isTurretError(e) && e.code === 'dns_failed',
  );
  await assert.rejects(checkAddresses({ host: 'x.test', kind: 'name', resolver: rebinding([[]]) }), (e: unknown) => isTurretError(e) && e.code === 'dns_failed');
});

test('candidates interleave families, starting with the first answer', () => {
  const order = (xs: string[]) => orderCandidates(xs.map((address) => ({ address }))).map((c) => c.address);
  assert.deepEqual(order(['1.1.1.1', '1.1.1.2', '2606::1', '2606::2', '2606::3']), ['1.1.1.1', '2606::1', '1.1.1.2', '2606::2', '2606::3']);
  assert.deepEqual(order(['2606::1', '1.1.1.1', '1.1.1.2']), ['2606::1', '1.1.1.1', '1.1.1.2']);
  assert.deepEqual(order([]), []);
});
