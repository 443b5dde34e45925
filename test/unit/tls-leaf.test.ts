/**
 * The CA and the leaves it mints: files and modes, refusal to overwrite, certificates that
 * verify against the CA with the right names and usages, and the cache's single-mint behaviour.
 * (No sockets: verification is done with Node's X509Certificate.)
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, statSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCa, loadCa, loadOrCreateCa, CaError } from '../../src/tls/ca.js';
import { createLeafKey, LeafCache, mintLeafPem } from '../../src/tls/leaf.js';
import { time, uint, oid } from '../../src/tls/der.js';

const tmp = (): string => mkdtempSync(path.join(tmpdir(), 'turret-tls-'));

it('creates a CA with a 0600 key and refuses to overwrite it without force', async () => {
  const dir = tmp();
  const ca = await createCa(dir);
  assert.equal(statSync(path.join(dir, 'ca.key')).mode & 0o777, 0o600);
  const cert = new X509Certificate(ca.certPem);
  assert.equal(cert.ca, true);
  await assert.rejects(createCa(dir), CaError);
  const again = await createCa(dir, { force: true });
  assert.notEqual(again.certPem, ca.certPem);
});

it('loadOrCreateCa creates once, then loads the same CA', async () => {
  const dir = tmp();
  const a = await loadOrCreateCa(dir, true);
  const b = await loadOrCreateCa(dir, true);
  assert.equal(a.created, true);
  assert.equal(b.created, false);
  assert.equal(a.ca.certPem, b.ca.certPem);
});

it('fails closed with a fix when the CA is missing, mismatched or garbage, without echoing key bytes', async () => {
  await assert.rejects(loadCa(tmp()), /turret ca init/);
  const d1 = tmp();
  const d2 = tmp();
  await createCa(d1);
  await createCa(d2);
  writeFileSync(path.join(d1, 'ca.key'), readFileSync(path.join(d2, 'ca.key')));
  await assert.rejects(loadCa(d1), /does not match/);
  const d3 = tmp();
  await createCa(d3);
  writeFileSync(path.join(d3, 'ca.key'), '-----BEGIN PRIVATE KEY-----\nZmFrZV9rZXlfbWF0ZXJpYWw=\n-----END PRIVATE KEY-----\n');
  await assert.rejects(loadCa(d3), (e: Error) => e instanceof CaError && !e.message.includes('ZmFrZV9rZXlfbWF0ZXJpYWw'));
});

it('mints leaves that verify against the CA with the host as SAN, for names and IP literals', async () => {
  const ca = await createCa(tmp());
  const key = createLeafKey();
  const caCert = new X509Certificate(ca.certPem);
  for (const host of ['api.github.com', 'xn--80ak6aa92e.com', 'a'.repeat(63) + '.example.com', '192.0.2.7', '2001:db8::1', '::ffff:c000:207']) {
    const leaf = new X509Certificate(mintLeafPem(ca, host, key.spkiDer));
    assert.ok(leaf.verify(caCert.publicKey), `${host}: signature verifies`);
    assert.ok(leaf.checkIssued(caCert), `${host}: issued by the CA`);
    assert.equal(leaf.ca, false);
    if (host.includes(':') || /^\d/.test(host)) assert.equal(leaf.checkIP(host), host, `${host}: IP SAN`);
    else assert.equal(leaf.checkHost(host), host, `${host}: DNS SAN`);
    assert.equal(leaf.checkHost(`evil.${host}`), undefined, 'no wildcard');
    assert.ok(new Date(leaf.validTo).getTime() - Date.now() > 6 * 86400_000);
    assert.match(leaf.keyUsage?.join(',') ?? '1.3.6.1.5.5.7.3.1', /1\.3\.6\.1\.5\.5\.7\.3\.1/);
  }
});

it('leaf serials are unique and positive', async () => {
  const ca = await createCa(tmp());
  const key = createLeafKey();
  const serials = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const s = new X509Certificate(mintLeafPem(ca, 'x.test', key.spkiDer)).serialNumber;
    assert.ok(!/^[89A-F]/i.test(s.padStart(32, '0')), 'top bit clear');
    serials.add(s);
  }
  assert.equal(serials.size, 50);
});

it('the cache mints once per host, even for concurrent first requests, and counts hits', async () => {
  const ca = await createCa(tmp());
  const events: string[] = [];
  const cache = new LeafCache(ca, 2, (r) => events.push(r));
  const [a, b] = await Promise.all([cache.contextFor('a.test'), cache.contextFor('a.test')]);
  assert.equal(a, b);
  await cache.contextFor('a.test');
  assert.equal(cache.stats.mints, 1);
  assert.equal(cache.stats.hits, 2);
  await cache.contextFor('b.test');
  await cache.contextFor('c.test'); // evicts a.test (max 2)
  await cache.contextFor('a.test');
  assert.equal(cache.stats.mints, 4);
  assert.deepEqual(events, ['mint', 'hit', 'hit', 'mint', 'mint', 'mint']);
});

it('DER helpers encode lengths, integers, OIDs and both time forms per X.690 / RFC 5280', () => {
  assert.equal(uint(Buffer.from([0x80])).toString('hex'), '02020080');
  assert.equal(uint(Buffer.from([0, 0, 5])).toString('hex'), '020105');
  assert.equal(oid('1.2.840.10045.4.3.2').toString('hex'), '06082a8648ce3d040302');
  assert.equal(
    time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59)))
      .toString('latin1')
      .slice(2),
    '491231235959Z',
  );
  assert.equal(
    time(new Date(Date.UTC(2050, 0, 1)))
      .toString('latin1')
      .slice(2),
    '20500101000000Z',
  );
});
