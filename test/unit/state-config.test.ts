/**
 * The small pure pieces of shared state and workers: worker audit names, chain grouping,
 * --workers parsing, and the ioredis options built from settings (password only in the options,
 * TLS with the operator's CA and the URL's host as server name).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chainOf, withWorkerChains } from '../../src/audit/chains.js';
import { UsageError } from '../../src/cli/common.js';
import { parseWorkers, workerAuditPath } from '../../src/cli/workers.js';
import { redisOptions } from '../../src/state/connect.js';

it('names one audit chain per worker beside the given path', () => {
  assert.equal(workerAuditPath('var/audit.jsonl', '2'), 'var/audit.w2.jsonl');
  assert.equal(workerAuditPath('/log/turret', '1'), '/log/turret.w1');
  assert.equal(workerAuditPath('off', '1'), 'off');
  assert.equal(workerAuditPath('var/audit.jsonl', undefined), 'var/audit.jsonl');
});

it('groups rotated files with their own chain and finds worker chains beside a name', () => {
  assert.equal(chainOf('a/audit.w2.jsonl.3'), 'a/audit.w2.jsonl');
  assert.equal(chainOf('a/audit.jsonl'), 'a/audit.jsonl');
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-chains-'));
  try {
    for (const n of ['audit.w1.jsonl', 'audit.w10.jsonl', 'audit.w2.jsonl', 'audit.w2.jsonl.1', 'other.w1.jsonl', 'audit.wx.jsonl']) writeFileSync(path.join(dir, n), '');
    const p = (n: string): string => path.join(dir, n);
    // audit.jsonl does not exist: it names the set of worker chains.
    assert.deepEqual(withWorkerChains([p('audit.jsonl')]), [p('audit.w1.jsonl'), p('audit.w2.jsonl'), p('audit.w10.jsonl')]);
    writeFileSync(p('audit.jsonl'), '');
    assert.deepEqual(withWorkerChains([p('audit.jsonl')]), [p('audit.jsonl'), p('audit.w1.jsonl'), p('audit.w2.jsonl'), p('audit.w10.jsonl')]);
    // A worker's own file is taken as given.
    assert.deepEqual(withWorkerChains([p('audit.w2.jsonl'), p('audit.w2.jsonl.1')]), [p('audit.w2.jsonl'), p('audit.w2.jsonl.1')]);
    assert.deepEqual(withWorkerChains([p('missing.jsonl')]), [p('missing.jsonl')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('parses --workers: 1..64 or auto, anything else is a usage error', () => {
  assert.equal(parseWorkers(undefined, {}), 1);
  assert.equal(parseWorkers('3', {}), 3);
  assert.equal(parseWorkers(undefined, { TURRET_WORKERS: '2' }), 2);
  assert.ok(parseWorkers('auto', {}) >= 1);
  for (const bad of ['0', '65', '-1', '2.5', 'two', '', '1e1']) assert.throws(() => parseWorkers(bad, {}), UsageError, bad);
});

it('builds ioredis options: password and CA only in the options, TLS for rediss, fail fast while disconnected', () => {
  const base = { caFile: null, username: null, password: null, keyPrefix: 'turret:', timeoutMs: 800 } as const;
  const plain = redisOptions({ ...base, url: 'redis://redis.test:6390/3' }, { password: 'pw-x', ca: null }, { server: true });
  assert.equal(plain.host, 'redis.test');
  assert.equal(plain.port, 6390);
  assert.equal(plain.db, 3);
  assert.equal(plain.password, 'pw-x');
  assert.equal(plain.tls, undefined);
  assert.equal(plain.enableOfflineQueue, false);
  assert.equal(plain.commandTimeout, 800);
  const retry = plain.retryStrategy as (n: number) => number;
  assert.ok(
    [1, 5, 50, 5000].every((n) => retry(n) > 0 && retry(n) <= 1000),
    'reconnects forever, at most a second apart',
  );
  const tls = redisOptions({ ...base, url: 'rediss://[::1]', username: 'turret' }, { password: null, ca: 'PEM' }, { server: false });
  assert.equal(tls.host, '::1');
  assert.equal(tls.port, 6379);
  assert.equal(tls.username, 'turret');
  assert.equal(tls.password, undefined);
  assert.deepEqual(tls.tls, { ca: ['PEM'] }, 'no SNI for an address');
  assert.deepEqual(redisOptions({ ...base, url: 'rediss://redis.test' }, { password: null, ca: null }, { server: true }).tls, { servername: 'redis.test' });
  assert.equal(tls.enableOfflineQueue, true);
});
