/**
 * openHandle keeps handles that opened (the AES-GCM open is paid once per handle, not per
 * request). The cache must not change an answer: a forged neighbour of a cached handle, or the
 * same handle under another key, still fails; the claims cannot be altered through the cache.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { HANDLE_PREFIX, issueHandle, openHandle } from '../../src/secrets/handles.js';
import { keyRingFrom } from '../../src/secrets/keys.js';

it('a cached handle opens to the same claims; forgeries and other keys still fail', () => {
  const ring = keyRingFrom(randomBytes(32));
  const other = keyRingFrom(randomBytes(32));
  const { handle, claims } = issueHandle(ring, { agent: 'a', secret: 's', ttlSeconds: 60 });
  assert.deepEqual(openHandle(ring, handle), claims);
  assert.deepEqual(openHandle(ring, handle), claims);
  assert.equal(openHandle(other, handle), null, 'another key ring: not opened, whatever ring A cached');
  const body = handle.slice(HANDLE_PREFIX.length);
  const flipped = HANDLE_PREFIX + body.slice(0, 20) + (body[20] === 'A' ? 'B' : 'A') + body.slice(21);
  assert.equal(openHandle(ring, flipped), null);
  const c = openHandle(ring, handle);
  assert.ok(c && Object.isFrozen(c), 'cached claims are frozen: no caller can alter what the next request sees');
});

it('stays bounded: thousands of handles, each still opens correctly', () => {
  const ring = keyRingFrom(randomBytes(32));
  const issued = Array.from({ length: 5000 }, (_, i) => issueHandle(ring, { agent: `a${i}`, secret: 's', ttlSeconds: 60 }));
  for (const { handle, claims } of issued) assert.deepEqual(openHandle(ring, handle), claims);
  for (const { handle, claims } of issued.slice(0, 10)) assert.deepEqual(openHandle(ring, handle), claims);
});
