/** Limit parsing (--limit / TURRET_LIMITS), durations, and the per-agent tunnel counter. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LIMIT_SPECS, parseDurationMs, parseLimits } from '../../src/cli/limits.js';
import { parseDrainTimeout } from '../../src/cli/start-ops.js';
import { DEFAULT_LIMITS, TunnelSlots } from '../../src/proxy/limits.js';

describe('limits parsing', () => {
  it('defaults without flags or environment', () => {
    assert.deepEqual(parseLimits(undefined, {}), DEFAULT_LIMITS);
  });

  it('every limit has a name and every name sets its own field', () => {
    const keys = Object.values(LIMIT_SPECS).map((s) => s.key);
    assert.deepEqual(new Set(keys), new Set(Object.keys(DEFAULT_LIMITS)));
    assert.equal(keys.length, new Set(keys).size);
  });

  it('flags override the environment; units; comma lists; dashes', () => {
    const l = parseLimits(['max_header_bytes=16k', 'request-timeout=2m,max_tunnels_per_agent=5'], { TURRET_LIMITS: 'max_tunnels_per_agent=9,connect_timeout=1500ms' });
    assert.equal(l.maxHeaderBytes, 16 * 1024);
    assert.equal(l.requestTimeoutMs, 120_000);
    assert.equal(l.maxTunnelsPerAgent, 5);
    assert.equal(l.connectTimeoutMs, 1_500);
    assert.equal(parseLimits('request_timeout=0', {}).requestTimeoutMs, 0, '0 switches the total timeout off');
  });

  it('refuses unknown names, missing or bad values, and values below the minimum (exit 2)', () => {
    const bad = [
      'nope=1',
      'max_header_bytes',
      'max_header_bytes=',
      'max_header_bytes=-1',
      'max_header_bytes=1e9',
      'max_header_bytes=10',
      'connect_timeout=fast',
      'connect_timeout=0',
      'connect_timeout=1d',
      'max_tunnels_per_agent=0',
      'max_tunnels_per_agent=1.5',
      'max_tunnels_per_agent=99999999999999999999',
      '__proto__=1',
      'client_headers_timeout=10m',
    ];
    for (const b of bad) {
      assert.throws(
        () => parseLimits([b], {}),
        (e: Error) => e.name === 'UsageError',
        b,
      );
    }
    assert.throws(() => parseLimits(undefined, { TURRET_LIMITS: 'bogus=1' }), /TURRET_LIMITS: unknown limit "bogus"; known: max_header_bytes/);
  });

  it('durations', () => {
    assert.equal(parseDurationMs('30s'), 30_000);
    assert.equal(parseDurationMs('30'), 30_000);
    assert.equal(parseDurationMs('250ms'), 250);
    assert.equal(parseDurationMs('1.5m'), 90_000);
    assert.equal(parseDurationMs('2h'), 7_200_000);
    for (const b of ['', 's', '-1s', '1 day', '1e3s', 'Infinity']) assert.equal(parseDurationMs(b), null, b);
    assert.equal(parseDrainTimeout(undefined, {}), 30_000);
    assert.equal(parseDrainTimeout(undefined, { TURRET_DRAIN_TIMEOUT: '5s' }), 5_000);
    assert.throws(
      () => parseDrainTimeout('soon', {}),
      (e: Error) => e.name === 'UsageError',
    );
  });
});

describe('tunnel slots', () => {
  it('refuses past the limit per agent, gives slots back once, and keeps agents apart', () => {
    const s = new TunnelSlots();
    const r1 = s.acquire('a', 2);
    const r2 = s.acquire('a', 2);
    assert.throws(
      () => s.acquire('a', 2),
      (e: Error & { code?: string }) => e.code === 'too_many_tunnels',
    );
    assert.doesNotThrow(() => s.acquire('b', 2), 'another agent has its own count');
    r1();
    r1(); // a second release must not free a slot that is in use
    assert.equal(s.count('a'), 1);
    s.acquire('a', 2);
    assert.throws(() => s.acquire('a', 2));
    r2();
    assert.equal(s.count('a'), 1);
  });
});
