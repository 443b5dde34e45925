import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileExceptions } from '../../src/net/exceptions.js';
import { classify } from '../../src/net/classify.js';

const c = (a: string, self?: string[]) => classify(a, self ? { selfAddresses: new Set(self) } : {});

test('a private exception opens exactly its CIDR, and nothing else', () => {
  const permit = compileExceptions([{ cidrs: ['10.2.3.4/32'], unsafe: false }]);
  assert.equal(permit(c('10.2.3.4')), true);
  assert.equal(permit(c('10.2.3.5')), false);
  assert.equal(permit(c('192.168.0.1')), false);
  assert.equal(permit(c('127.0.0.1')), false);
  assert.equal(permit(c('8.8.8.8')), false, 'public needs no exception');
});

test('a bare address means /32 or /128', () => {
  const permit = compileExceptions([{ cidrs: ['10.2.3.4', 'fd00::7'], unsafe: false }]);
  assert.equal(permit(c('10.2.3.4')), true);
  assert.equal(permit(c('fd00::7')), true);
  assert.equal(permit(c('fd00::8')), false);
});

test('IPv4-mapped IPv6 is matched by its IPv4; NAT64, 6to4 and Teredo forms never are', () => {
  const permit = compileExceptions([{ cidrs: ['10.0.0.0/8'], unsafe: false }]);
  assert.equal(permit(c('::ffff:10.1.2.3')), true);
  assert.equal(permit(c('64:ff9b::a01:203')), false);
  assert.equal(permit(c('2002:a01:203::')), false);
});

test('loopback, link-local, metadata and self need unsafe, even inside a broad safe range', () => {
  const safe = compileExceptions([{ cidrs: ['100.64.0.0/10', '10.9.0.0/16'], unsafe: false }]);
  assert.equal(safe(c('100.64.1.1')), true);
  assert.equal(safe(c('100.100.100.200')), false, 'metadata inside CGNAT stays refused');
  assert.equal(safe(c('10.9.9.9', ['10.9.9.9'])), false);

  const unsafe = compileExceptions([{ cidrs: ['127.0.0.0/8', '169.254.169.254/32', '10.9.9.9/32'], unsafe: true }]);
  assert.equal(unsafe(c('127.0.0.1')), true);
  assert.equal(unsafe(c('::ffff:127.0.0.1')), true);
  assert.equal(unsafe(c('169.254.169.254')), true);
  assert.equal(unsafe(c('10.9.9.9', ['10.9.9.9'])), true, 'self opened by an unsafe exception naming it');
  assert.equal(unsafe(c('10.9.9.8', ['10.9.9.8'])), false);
  assert.equal(unsafe(c('::1')), false, 'IPv6 loopback is not in 127.0.0.0/8');
});

test('exceptions that can never apply are load errors with a clear message', () => {
  const cases: Array<[{ cidrs: string[]; unsafe: boolean }, RegExp]> = [
    [{ cidrs: ['8.8.8.0/24'], unsafe: false }, /can never apply.*public/],
    [{ cidrs: ['2606:4700::/32'], unsafe: true }, /can never apply.*public/],
    [{ cidrs: ['224.0.0.0/4'], unsafe: true }, /can never apply.*multicast/],
    [{ cidrs: ['255.255.255.255/32'], unsafe: true }, /can never apply.*broadcast/],
    [{ cidrs: ['127.0.0.1/32'], unsafe: false }, /loopback.*unsafe_/],
    [{ cidrs: ['::1/128'], unsafe: false }, /loopback.*unsafe_/],
    [{ cidrs: ['169.254.0.0/16'], unsafe: false }, /link_local.*unsafe_/],
    [{ cidrs: ['168.63.129.16/32'], unsafe: false }, /metadata.*unsafe_/],
    [{ cidrs: ['0.0.0.0/32'], unsafe: false }, /unspecified.*unsafe_/],
    [{ cidrs: ['10.2.3.4/8'], unsafe: false }, /host bits set; did you mean 10\.0\.0\.0\/8/],
    [{ cidrs: ['10.0.0.0/33'], unsafe: false }, /not a valid CIDR/],
    [{ cidrs: ['internal.corp'], unsafe: false }, /not a valid CIDR/],
    [{ cidrs: ['fe80::/10%eth0'], unsafe: true }, /not a valid CIDR/],
    [{ cidrs: ['::ffff:10.0.0.0/104'], unsafe: false }, /IPv4-mapped.*write the IPv4 range/],
    [{ cidrs: ['64:ff9b::/96'], unsafe: true }, /NAT64.*write the IPv4 range/],
    [{ cidrs: [], unsafe: false }, /lists no CIDRs/],
  ];
  for (const [ex, re] of cases) assert.throws(() => compileExceptions([ex]), re, JSON.stringify(ex));
});

test('a range mixing safe and unsafe classes loads, but only opens the safe part without unsafe', () => {
  const permit = compileExceptions([{ cidrs: ['128.0.0.0/1'], unsafe: false }]);
  assert.equal(permit(c('172.16.0.1')), true);
  assert.equal(permit(c('169.254.1.1')), false);
  assert.equal(permit(c('168.63.129.16')), false);
  assert.equal(permit(c('192.0.2.1')), true, 'documentation ranges may be opened (test labs)');
  assert.equal(permit(c('224.0.0.1')), false);
  assert.equal(permit(c('8.8.8.8')), false);
});

test('no exceptions permit nothing', () => {
  const permit = compileExceptions([]);
  for (const a of ['10.0.0.1', '127.0.0.1', '::1', '169.254.169.254']) assert.equal(permit(c(a)), false);
});
