import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAuthority, normaliseHost, formatAuthority } from '../../src/net/host.js';
import { classify, parseStrictAddress } from '../../src/net/classify.js';
import { isTurretError } from '../../src/core/errors.js';

const badTarget = (reason?: string) => (err: unknown) => isTurretError(err) && err.code === 'bad_target' && (reason === undefined || err.reason === reason);

test('parseAuthority: host, port and kind from CONNECT / Host forms', () => {
  assert.deepEqual(parseAuthority('example.com:443', 80), { host: 'example.com', port: 443, kind: 'name' });
  assert.deepEqual(parseAuthority('Example.COM.', 80), { host: 'example.com', port: 80, kind: 'name' });
  assert.deepEqual(parseAuthority('[::1]:8443', 443), { host: '::1', port: 8443, kind: 'ipv6' });
  assert.deepEqual(parseAuthority('[::ffff:127.0.0.1]', 443), { host: '::ffff:7f00:1', port: 443, kind: 'ipv6' });
  assert.deepEqual(parseAuthority('0x7f.1:22', 443), { host: '127.0.0.1', port: 22, kind: 'ipv4' });
  assert.deepEqual(parseAuthority('2130706433:80', 443), { host: '127.0.0.1', port: 80, kind: 'ipv4' });
  assert.deepEqual(parseAuthority('bücher.de:65535', 443), { host: 'xn--bcher-kva.de', port: 65535, kind: 'name' });
  assert.deepEqual(parseAuthority('a.com:0443', 80), { host: 'a.com', port: 443, kind: 'name' });
});

test('parseAuthority refuses malformed authorities with bad_target', () => {
  const cases: Array<[string, string]> = [
    ['', 'empty authority'],
    [':443', 'empty host'],
    ['example.com:', 'empty port'],
    ['example.com:0', 'port out of range'],
    ['example.com:65536', 'port out of range'],
    ['example.com:99999', 'port out of range'],
    ['example.com:123456', 'port is not a number'],
    ['example.com:-1', 'port is not a number'],
    ['example.com:+443', 'port is not a number'],
    ['example.com:0x1bb', 'port is not a number'],
    ['example.com:4 43', 'authority contains a space, NUL or control character'],
    ['example.com :443', 'authority contains a space, NUL or control character'],
    ['example.com\u0000:443', 'authority contains a space, NUL or control character'],
    ['example.com\r\nX: y:443', 'authority contains a space, NUL or control character'],
    ['user:pass@example.com:443', 'userinfo is not allowed in the authority'],
    ['@example.com', 'userinfo is not allowed in the authority'],
    ['example.com/path:443', 'authority contains a path, query or fragment'],
    ['example.com?:443', 'authority contains a path, query or fragment'],
    ['example.com#:443', 'authority contains a path, query or fragment'],
    ['127.0.0.1\\@evil.com', 'userinfo is not allowed in the authority'],
    ['::1:443', 'IPv6 addresses must be in brackets'],
    ['[::1]443', 'unexpected text after IPv6 literal'],
    ['[::1', 'unterminated IPv6 literal'],
    ['[fe80::1%25eth0]:443', 'IPv6 zone ids are not allowed'],
    ['[::1]:', 'empty port'],
    ['x'.repeat(2000), 'authority is too long'],
  ];
  for (const [input, reason] of cases) assert.throws(() => parseAuthority(input, 443), badTarget(reason), JSON.stringify(input));
});

test('parseAuthority validates the default port too', () => {
  assert.throws(() => parseAuthority('example.com', 0), badTarget('port out of range'));
  assert.throws(() => parseAuthority('example.com', 70000), badTarget('port out of range'));
  assert.throws(() => parseAuthority('example.com', 1.5), badTarget('port out of range'));
});

test('formatAuthority brackets IPv6 and round-trips', () => {
  for (const a of ['example.com:443', '[::1]:8443', '127.0.0.1:80']) assert.equal(formatAuthority(parseAuthority(a, 443)), a);
});

test('normaliseHost rejects non-strings and oversize input without parsing', () => {
  assert.throws(() => normaliseHost(undefined as unknown as string), badTarget('empty host'));
  assert.throws(() => normaliseHost('a'.repeat(5000)), badTarget('host is too long'));
});

test('classify is strict: it does not guess at odd spellings', () => {
  for (const s of ['0x7f.1', '127.1', '2130706433', '0177.0.0.1', '01.2.3.4', '1.2.3.4 ', '[::1]', 'fe80::1%eth0', '::ffff:1.2.3.04', 'localhost', '', '1::2::3', '::ffff:127.1']) {
    assert.throws(() => classify(s), badTarget(), JSON.stringify(s));
  }
});

test('our IPv6 parser keeps IPv4-compatible and IPv4-mapped apart (ipaddr.js merges them)', () => {
  assert.equal(parseStrictAddress('::1.2.3.4').toString(), '::102:304');
  assert.equal(parseStrictAddress('::ffff:1.2.3.4').toString(), '::ffff:102:304');
  assert.equal(parseStrictAddress('1:2:3:4:5:6:1.2.3.4').toString(), '1:2:3:4:5:6:102:304');
  assert.equal(parseStrictAddress('1:2:3:4:5:6:7::').toString(), '1:2:3:4:5:6:7:0');
  for (const s of ['1:2:3:4:5:6:7:1.2.3.4', ':1::', '1:::2', '12345::', '1:2:3:4:5:6:7', ':', '::ffff:1.2.3.4.5']) {
    assert.throws(() => parseStrictAddress(s), badTarget(), s);
  }
});

test("'self': this host's addresses are refused even when public, except loopback and metadata keep their names", () => {
  const self = new Set(['203.0.114.7', '10.9.9.9', '2600:1F18:0::5', '127.0.0.5', '169.254.169.254', 'not-an-address']);
  const opts = { selfAddresses: self };
  const own = "an address of the proxy's own host";
  assert.deepEqual(classify('203.0.114.7', opts), { address: '203.0.114.7', class: 'self', reason: own, rfc: 'Turret' });
  assert.equal(classify('10.9.9.9', opts).class, 'self');
  assert.equal(classify('2600:1f18::5', opts).class, 'self');
  const mapped = classify('::ffff:cb00:7207', opts);
  assert.equal(mapped.class, 'self');
  assert.equal(mapped.embedded, '203.0.114.7');
  assert.equal(classify('127.0.0.5', opts).class, 'loopback');
  assert.equal(classify('169.254.169.254', opts).class, 'metadata');
  assert.equal(classify('203.0.114.8', opts).class, 'public');
  assert.equal(classify('203.0.114.7').class, 'public');
});

test('isMixedScriptLookalike reads punycode labels in any letter case and position', async () => {
  const { isMixedScriptLookalike } = await import('../../src/net/host.js');
  // "аpple" with a Cyrillic а (xn--pple-43d), a whole-script Latin look-alike under .com.
  for (const h of ['xn--pple-43d.com', 'XN--PPLE-43D.COM', 'Xn--pple-43d.com', 'xN--pple-43d.com', 'www.xn--pple-43d.com', 'a.b.XN--pple-43d.com']) {
    assert.equal(isMixedScriptLookalike(h), true, h);
  }
  for (const h of ['apple.com', 'xn-pple.com', 'n--pple.com', 'example.org', '']) assert.equal(isMixedScriptLookalike(h), false, h);
});

test('isMixedScriptLookalike fails closed on punycode it cannot read', async () => {
  const { isMixedScriptLookalike } = await import('../../src/net/host.js');
  assert.equal(isMixedScriptLookalike('xn--ab-.com'), true, 'punycode of plain ASCII');
  assert.equal(isMixedScriptLookalike('xn--zz.com'), true, 'does not decode');
  assert.equal(isMixedScriptLookalike('example.com'), false);
  assert.equal(isMixedScriptLookalike('XN--BCHER-KVA.DE'), false);
});
