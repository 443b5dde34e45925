/** Token buckets: per agent, per rule, burst, refill, Retry-After, no reset on reload. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy } from '../../src/config/load.js';
import { decide } from '../../src/policy/decide.js';
import { limitChecks, RateLimiter } from '../../src/policy/ratelimit.js';
import { parseRequestLine } from '../../src/policy/request.js';

const text = (burst: number) => `agents: [{ name: a }, { name: b }]
rules:
  - { name: r, methods: [read], hosts: [x.test] }
  - { name: slow, methods: [read], hosts: [slow.test], rate_limit: { requests: 1, per: 10s } }
limits:
  - { agents: [a, b], requests: 2, per: 1s, burst: ${burst} }
`;

describe('rate limits', () => {
  it('allows a burst, then refuses with a Retry-After until tokens refill, per agent', () => {
    const p = compilePolicy([{ file: 't.yaml', text: text(3) }]);
    const rl = new RateLimiter();
    const take = (agent: string, host: string, now: number) => {
      const d = decide(p, parseRequestLine(agent, `GET https://${host}/`), now);
      return rl.take(limitChecks(p, agent, d.rule), now);
    };
    const t0 = 1_000_000;
    for (let i = 0; i < 3; i++) assert.equal(take('a', 'x.test', t0).ok, true, `burst ${i}`);
    const r = take('a', 'x.test', t0);
    assert.equal(r.ok, false);
    assert.equal(r.ok === false && r.retryAfterS, 1);
    assert.equal(take('b', 'x.test', t0).ok, true, 'another agent has its own bucket');
    assert.equal(take('a', 'x.test', t0 + 499).ok, false);
    assert.equal(take('a', 'x.test', t0 + 500).ok, true, '2 per second refills one token in 500 ms');
  });
  it('a rule limit applies on top of the agent limit; a refusal by one does not drain the other', () => {
    const p = compilePolicy([{ file: 't.yaml', text: text(3) }]);
    const rl = new RateLimiter();
    const checks = limitChecks(p, 'a', p.rules[1] ?? null);
    assert.equal(checks.length, 2);
    assert.equal(rl.take(checks, 0).ok, true);
    const r = rl.take(checks, 0);
    assert.equal(r.ok, false);
    assert.equal(r.ok === false && r.retryAfterS, 10);
    assert.match(r.ok === false ? r.label : '', /rule slow/);
    assert.equal(rl.take(limitChecks(p, 'a', p.rules[0] ?? null), 0).ok, true);
    assert.equal(rl.take(limitChecks(p, 'a', p.rules[0] ?? null), 0).ok, true, 'agent bucket lost only the allowed requests');
    assert.equal(rl.take(limitChecks(p, 'a', p.rules[0] ?? null), 0).ok, false);
  });
  it('a reload with the same limits keeps the buckets; changed limits start fresh', () => {
    const rl = new RateLimiter();
    const p1 = compilePolicy([{ file: 't.yaml', text: text(1) }]);
    assert.equal(rl.take(limitChecks(p1, 'a', null), 0).ok, true);
    const p2 = compilePolicy([{ file: 't.yaml', text: text(1) }]);
    assert.equal(rl.take(limitChecks(p2, 'a', null), 0).ok, false, 'reloading is not a way to reset a limit');
    const p3 = compilePolicy([{ file: 't.yaml', text: text(5) }]);
    assert.equal(rl.take(limitChecks(p3, 'a', null), 0).ok, true);
  });
});
