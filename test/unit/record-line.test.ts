/**
 * Record lines (audit, logs, console feed) refer to handles before scrubbing. A forged handle that
 * holds a run a token pattern matches (40 mixed alphanumerics between `_`/`-`: the AWS secret-key
 * shape) used to be half redacted and half left in the audit log, and a percent-encoded genuine
 * handle lost its reference the same way (seen as a flaky agents-auth test: random forgeries hit
 * the shape now and then). Here the run is placed on purpose.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { keyRingFrom } from '../../src/secrets/keys.js';
import { issueHandle } from '../../src/secrets/handles.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { recordLine } from '../../src/proxy/record-line.js';

const RUN = 'Zq3Xb7Kp2Lm9Nw4Rt6Yv8Ua1Sd5Fg0Hj3Kl7Mn2P';
const ring = keyRingFrom(randomBytes(32));
const scrubber = compileScrubber({ secrets: [], patterns: compilePatterns(BUILTIN_PATTERNS) });

function percentEncodeAll(s: string): string {
  return [...s].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`).join('');
}

it('the run alone is redacted as a token (so the tests below can fail)', () => {
  assert.match(recordLine(ring, scrubber, `key ${RUN} end`), /\[REDACTED:aws-secret-access-key\]/);
});

it('a forged handle holding a token-shaped run becomes one fingerprint, nothing of it left', () => {
  const forged = `trt_AbC-_${RUN}_${randomBytes(24).toString('base64url')}`;
  for (const line of [`/forged/${forged}`, `/forged/${forged.slice(0, 4)}${percentEncodeAll(forged.slice(4, 9))}${forged.slice(9)}`, `/forged/%74rt%5F${forged.slice(4)}`]) {
    const out = recordLine(ring, scrubber, line);
    assert.match(out, /^\/forged\/\[handle:unknown:[0-9a-f]{16}\]$/, out);
    assert.ok(!out.includes(RUN.slice(0, 12)) && !out.includes(forged.slice(-12)), out);
  }
});

it('a genuine handle, plain or percent-encoded, becomes its id', () => {
  const { handle, claims } = issueHandle(ring, { agent: 'a', secret: 's', ttlSeconds: 60 });
  for (const line of [`/p/${handle}`, `/p/%74rt%5F${handle.slice(4)}`, `/p/${percentEncodeAll(handle)}`]) {
    assert.equal(recordLine(ring, scrubber, line), `/p/[handle:${claims.id}]`);
  }
});

it('secrets around a handle are still scrubbed, and without a scrubber handles are still referred', () => {
  const secret = randomBytes(18).toString('hex');
  const s = compileScrubber({ secrets: [{ name: 'k', value: secret, replacement: '[REDACTED:k]' }], patterns: [] });
  const forged = `trt_${randomBytes(60).toString('base64url')}`;
  const out = recordLine(ring, s, `a=${secret} h=${forged}`);
  assert.match(out, /^a=\[REDACTED:k\] h=\[handle:unknown:[0-9a-f]{16}\]$/);
  assert.match(recordLine(ring, null, `h=${forged}`), /^h=\[handle:unknown:[0-9a-f]{16}\]$/);
});
