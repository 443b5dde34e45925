import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ExchangeEnding } from '../../src/proxy/ending.js';
import { TurretError } from '../../src/core/errors.js';

describe('ExchangeEnding: the abort signal undici gets', () => {
  it('runs each listener once, at the first end only, and keeps the first cause', () => {
    const e = new ExchangeEnding();
    const ran: string[] = [];
    e.once('abort', () => ran.push('a'));
    e.on('abort', () => ran.push('b'));
    e.end(new TurretError('client_timeout', 'first'));
    e.end(new TurretError('upstream_timeout', 'second'));
    assert.deepEqual(ran, ['a', 'b']);
    assert.equal(e.cause?.code, 'client_timeout');
    e.once('abort', () => ran.push('late'));
    assert.deepEqual(ran, ['a', 'b'], 'a listener added after the end never runs');
  });

  it('a listener removed before the end does not run', () => {
    const e = new ExchangeEnding();
    const ran: string[] = [];
    const b = (): number => ran.push('b');
    e.once('abort', () => ran.push('a'));
    e.once('abort', b);
    e.once('abort', () => ran.push('c'));
    e.removeListener('abort', b);
    e.end(new TurretError('client_timeout', 'x'));
    assert.deepEqual(ran, ['a', 'c']);
  });

  it('a listener removed by an earlier listener while the end runs does not run; the rest still do', () => {
    const e = new ExchangeEnding();
    const ran: string[] = [];
    const b = (): number => ran.push('b');
    e.once('abort', () => {
      ran.push('a');
      e.removeListener('abort', b);
    });
    e.once('abort', b);
    e.once('abort', () => ran.push('c'));
    e.end(new TurretError('client_timeout', 'x'));
    assert.deepEqual(ran, ['a', 'c']);
  });
});
