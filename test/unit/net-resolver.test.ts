import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createResolver, type LookupFn } from '../../src/net/resolver.js';
import { isTurretError } from '../../src/core/errors.js';

/** A fake DNS: answers from a table, counts calls per name, optionally waits for a gate. */
function fakeDns(table: Record<string, Array<{ address: string; family: 4 | 6; ttl?: number }> | Error>) {
  const calls = new Map<string, number>();
  let gate: Promise<void> | undefined;
  const lookup: LookupFn = async (host) => {
    calls.set(host, (calls.get(host) ?? 0) + 1);
    if (gate) await gate;
    const answer = table[host];
    if (answer === undefined) throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { lookup, calls, hold: (p: Promise<void>) => (gate = p), release: () => (gate = undefined) };
}

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const dnsFailed = (err: unknown) => isTurretError(err) && err.code === 'dns_failed';

test('answers are cached for their TTL, then looked up again', async () => {
  const dns = fakeDns({ 'a.test': [{ address: '93.184.216.34', family: 4, ttl: 30 }] });
  const c = clock();
  const r = createResolver({ lookup: dns.lookup, now: c.now, minTtlMs: 1000, maxTtlMs: 600_000 });
  assert.deepEqual(await r.resolve('a.test'), [{ address: '93.184.216.34', family: 4 }]);
  await r.resolve('a.test');
  await r.resolve('A.TEST.');
  assert.equal(dns.calls.get('a.test'), 1, 'case and trailing dot share one entry');
  c.advance(29_999);
  await r.resolve('a.test');
  assert.equal(dns.calls.get('a.test'), 1);
  c.advance(2);
  await r.resolve('a.test');
  assert.equal(dns.calls.get('a.test'), 2);
});

test('TTL is clamped to [minTtlMs, maxTtlMs] and the shortest answer TTL wins', async () => {
  const dns = fakeDns({
    zero: [{ address: '1.1.1.1', family: 4, ttl: 0 }],
    long: [{ address: '1.1.1.2', family: 4, ttl: 86_400 }],
    mixed: [
      { address: '1.1.1.3', family: 4, ttl: 300 },
      { address: '2606:4700::1', family: 6, ttl: 5 },
    ],
  });
  const c = clock();
  const r = createResolver({ lookup: dns.lookup, now: c.now, minTtlMs: 2_000, maxTtlMs: 60_000 });
  for (const n of ['zero', 'long', 'mixed']) await r.resolve(n);
  c.advance(1_999);
  for (const n of ['zero', 'long', 'mixed']) await r.resolve(n);
  assert.deepEqual([dns.calls.get('zero'), dns.calls.get('long'), dns.calls.get('mixed')], [1, 1, 1]);
  c.advance(3_002); // 5.001 s: zero (min 2 s) and mixed (5 s) expired, long not
  for (const n of ['zero', 'long', 'mixed']) await r.resolve(n);
  assert.deepEqual([dns.calls.get('zero'), dns.calls.get('long'), dns.calls.get('mixed')], [2, 1, 2]);
  c.advance(60_000);
  await r.resolve('long');
  assert.equal(dns.calls.get('long'), 2, 'a day-long TTL is capped at maxTtlMs');
});

test('concurrent lookups of one name are coalesced into one query', async () => {
  const dns = fakeDns({ 'c.test': [{ address: '8.8.8.8', family: 4, ttl: 60 }] });
  let open!: () => void;
  void dns.hold(new Promise<void>((res) => (open = res)));
  const r = createResolver({ lookup: dns.lookup });
  const all = Array.from({ length: 50 }, () => r.resolve('c.test'));
  open();
  const results = await Promise.all(all);
  assert.equal(dns.calls.get('c.test'), 1);
  for (const res of results) assert.deepEqual(res, [{ address: '8.8.8.8', family: 4 }]);
});

test('coalesced failures reach every waiter and are not cached when transient', async () => {
  const dns = fakeDns({ 'flaky.test': Object.assign(new Error('timeout'), { code: 'ETIMEOUT' }) });
  const r = createResolver({ lookup: dns.lookup });
  const results = await Promise.allSettled([r.resolve('flaky.test'), r.resolve('flaky.test')]);
  for (const res of results) assert.ok(res.status === 'rejected' && dnsFailed(res.reason));
  assert.equal(dns.calls.get('flaky.test'), 1);
  await assert.rejects(r.resolve('flaky.test'), dnsFailed);
  assert.equal(dns.calls.get('flaky.test'), 2, 'a timeout is retried, not cached');
});

test('NXDOMAIN and empty answers are cached for negativeTtlMs', async () => {
  const dns = fakeDns({ 'empty.test': [] });
  const c = clock();
  const r = createResolver({ lookup: dns.lookup, now: c.now, negativeTtlMs: 5_000 });
  for (let i = 0; i < 3; i++) {
    await assert.rejects(r.resolve('nx.test'), dnsFailed);
    await assert.rejects(r.resolve('empty.test'), dnsFailed);
  }
  assert.deepEqual([dns.calls.get('nx.test'), dns.calls.get('empty.test')], [1, 1]);
  c.advance(5_001);
  await assert.rejects(r.resolve('nx.test'), dnsFailed);
  assert.equal(dns.calls.get('nx.test'), 2);
});

test('the cache is a bounded LRU', async () => {
  const table: Record<string, Array<{ address: string; family: 4 | 6; ttl?: number }>> = {};
  for (let i = 0; i < 10; i++) table[`h${i}.test`] = [{ address: `8.8.8.${i}`, family: 4, ttl: 3600 }];
  const dns = fakeDns(table);
  const r = createResolver({ lookup: dns.lookup, maxEntries: 3 });
  await r.resolve('h0.test');
  await r.resolve('h1.test');
  await r.resolve('h2.test');
  await r.resolve('h0.test'); // h0 is now most recent; h1 is the oldest
  await r.resolve('h3.test'); // evicts h1
  await r.resolve('h0.test');
  await r.resolve('h2.test');
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => dns.calls.get(`h${i}.test`)),
    [1, 1, 1, 1],
  );
  await r.resolve('h1.test');
  assert.equal(dns.calls.get('h1.test'), 2, 'h1 was evicted');
  for (let i = 4; i < 10; i++) await r.resolve(`h${i}.test`);
  await r.resolve('h0.test');
  assert.equal(dns.calls.get('h0.test'), 2, 'old entries leave as new ones arrive');
});

test('answers are canonicalised and de-duplicated; an unparseable answer fails the whole lookup', async () => {
  const dns = fakeDns({
    dup: [
      { address: '2001:DB8:0::1', family: 6, ttl: 60 },
      { address: '2001:db8::1', family: 6, ttl: 60 },
      { address: '8.8.8.8', family: 4, ttl: 60 },
    ],
    odd: [
      { address: '8.8.8.8', family: 4 },
      { address: '0x7f.1', family: 4 },
    ],
  });
  const r = createResolver({ lookup: dns.lookup });
  assert.deepEqual(await r.resolve('dup'), [
    { address: '2001:db8::1', family: 6 },
    { address: '8.8.8.8', family: 4 },
  ]);
  await assert.rejects(r.resolve('odd'), dnsFailed, 'never drop an answer we cannot judge');
});

test('callers cannot poison the cache by mutating a result', async () => {
  const dns = fakeDns({ m: [{ address: '8.8.8.8', family: 4, ttl: 60 }] });
  const r = createResolver({ lookup: dns.lookup });
  const first = await r.resolve('m');
  first.push({ address: '127.0.0.1', family: 4 });
  assert.throws(() => ((first[0] as { address: string }).address = '127.0.0.1'));
  assert.deepEqual(await r.resolve('m'), [{ address: '8.8.8.8', family: 4 }]);
});

test('static hosts bypass DNS and are validated at creation', async () => {
  const dns = fakeDns({});
  const r = createResolver({ lookup: dns.lookup, staticHosts: { 'Internal.Corp.': ['10.2.3.4', 'FD00::1'] } });
  assert.deepEqual(await r.resolve('internal.corp'), [
    { address: '10.2.3.4', family: 4 },
    { address: 'fd00::1', family: 6 },
  ]);
  assert.equal(dns.calls.size, 0);
  assert.throws(() => createResolver({ staticHosts: { x: ['0x7f.1'] } }), /not an IP address/);
  assert.throws(() => createResolver({ staticHosts: { x: [] } }), /no addresses/);
});
