/** The connection cap derived from the open-files limit (src/proxy/listen/accept.ts). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connectionCap, FD_RESERVE, openFilesLimit } from '../../src/proxy/listen/accept.js';

describe('connectionCap', () => {
  it('an explicit max_client_connections wins', () => {
    assert.equal(connectionCap(500, 1, 128), 500);
    assert.equal(connectionCap(500, 2, null), 500);
  });
  it('derived: two descriptors per connection after the reserve, shared by the client listeners', () => {
    assert.equal(connectionCap(0, 1, 65_536), (65_536 - FD_RESERVE) / 2);
    assert.equal(connectionCap(0, 2, 65_536), (65_536 - FD_RESERVE) / 4);
    assert.equal(connectionCap(0, 1, 129), 32);
  });
  it('never below 1, and no cap when the limit is unknown', () => {
    assert.equal(connectionCap(0, 1, 10), 1);
    assert.equal(connectionCap(0, 1, null), null);
  });
  it('reads this process’s soft limit on Linux', () => {
    const n = openFilesLimit();
    assert.ok(n === null || (Number.isInteger(n) && n > 0));
  });
});
