/**
 * Pure pieces of the proxy's destination guards: DNS server entries (settings.dns_servers), the
 * look-alike gate (only an exact host in an allow rule for the agent opens it), and the self set
 * growing after first use. No sockets, no DNS.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDnsServer } from '../../src/net/resolver.js';
import { classify } from '../../src/net/classify.js';
import { interfaceAddresses } from '../../src/net/self.js';
import { checkLookalike } from '../../src/proxy/stages/guards.js';
import { isTurretError } from '../../src/core/errors.js';
import type { HostPattern, Policy } from '../../src/policy/types.js';

test('parseDnsServer accepts IP literals with optional ports and nothing else', () => {
  const ok: Array<[string, string]> = [
    ['10.0.0.53', '10.0.0.53:53'],
    ['127.0.0.1:5353', '127.0.0.1:5353'],
    ['[::1]:53', '[::1]:53'],
    ['[::1]', '[::1]:53'],
    ['::1', '[::1]:53'],
    ['[2001:db8::1]:65535', '[2001:db8::1]:65535'],
  ];
  for (const [input, want] of ok) assert.equal(parseDnsServer(input), want, input);
  const bad = [
    '',
    'dns.google',
    'dns.google:53',
    '127.1',
    '0x7f.0.0.1',
    '1.2.3.4:0',
    '1.2.3.4:65536',
    '1.2.3.4:',
    '1.2.3.4:53:53',
    '[::1]:',
    '[fe80::1%eth0]:53',
    'fe80::1%eth0',
    '1.2.3.4 ',
    ' 1.2.3.4',
    '1.2.3.4\u0000',
    '[1.2.3.4]:53',
    'x'.repeat(100),
  ];
  for (const input of bad) assert.throws(() => parseDnsServer(input), Error, JSON.stringify(input));
});

function host(kind: HostPattern['kind'], h: string): HostPattern {
  return { source: h, kind, host: h, port: 'any' } as HostPattern;
}

function policyWith(rules: Array<{ agents?: string[]; action?: 'allow' | 'deny'; hosts: HostPattern[] }>): Policy {
  return { rules: rules.map((r) => ({ action: r.action ?? 'allow', agents: r.agents ? new Set(r.agents) : 'any', hosts: r.hosts })) } as unknown as Policy;
}

const LOOKALIKE = 'xn--pple-43d.example.com'; // Cyrillic "а" + Latin "pple"

const refusedAsLookalike = (fn: () => void): void => assert.throws(fn, (e) => isTurretError(e) && e.code === 'dest_host_lookalike' && e.status === 403);

test('checkLookalike: wildcards, suffixes, other agents and deny rules never open a look-alike', () => {
  refusedAsLookalike(() => checkLookalike(policyWith([{ hosts: [host('any', '')] }]), 'a', LOOKALIKE));
  refusedAsLookalike(() => checkLookalike(policyWith([{ hosts: [host('suffix', 'example.com')] }]), 'a', LOOKALIKE));
  refusedAsLookalike(() => checkLookalike(policyWith([{ agents: ['b'], hosts: [host('exact', LOOKALIKE)] }]), 'a', LOOKALIKE));
  refusedAsLookalike(() => checkLookalike(policyWith([{ action: 'deny', hosts: [host('exact', LOOKALIKE)] }]), 'a', LOOKALIKE));
  refusedAsLookalike(() => checkLookalike(policyWith([{ hosts: [host('exact', 'xn--pple-43d.example.org')] }]), 'a', LOOKALIKE));
  refusedAsLookalike(() => checkLookalike(policyWith([]), 'a', 'xn--80ak6aa92e.com'));
});

test('checkLookalike: an exact allow rule for the agent opens it; ordinary names pass untouched', () => {
  checkLookalike(policyWith([{ agents: ['a'], hosts: [host('exact', LOOKALIKE)] }]), 'a', LOOKALIKE);
  for (const ok of ['example.com', 'xn--bcher-kva.de', '127.0.0.1', '::1', 'xn--fiqs8s.cn']) checkLookalike(policyWith([]), 'a', ok);
});

test('the self set is re-read when it grows, and loopback keeps its class inside it', () => {
  const self = interfaceAddresses(['127.0.0.1']);
  assert.equal(classify('127.0.0.1', { selfAddresses: self }).class, 'loopback');
  assert.equal(classify('::1', { selfAddresses: self }).class, 'loopback');
  // First use caches the canonical set; an address added later (the listen address once bound)
  // must still be seen.
  assert.equal(classify('203.0.113.77', { selfAddresses: self }).class, 'documentation');
  self.add('203.0.113.77');
  assert.equal(classify('203.0.113.77', { selfAddresses: self }).class, 'self');
  self.add('2001:DB8:0:0::77');
  assert.equal(classify('2001:db8::77', { selfAddresses: self }).class, 'self');
  assert.equal(classify('::ffff:203.0.113.77', { selfAddresses: self }).class, 'self', 'mapped forms are judged by the IPv4 inside');
  assert.equal(classify('169.254.169.254', { selfAddresses: new Set(['169.254.169.254']) }).class, 'metadata');
});
