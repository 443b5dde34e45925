/**
 * The proxy's scrubber cache keeps the loaded secret values instead of loading every secret per
 * response. What it must never do: miss a value a request just injected (a rotated secret is
 * scrubbed from the response to the request that used it), keep an old set past the recheck
 * bound, or miss a captured OAuth token (the version number changes). Every secret is still
 * scrubbed, each with the replacement the request earned (its handle, or the marker).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ScrubberCache, SECRETS_RECHECK_MS } from '../../src/proxy/stages/scrubbing.js';
import { Secret } from '../../src/secrets/secret.js';

const fake = (tag: string): string => `fake_${tag}_${randomBytes(12).toString('hex')}`;

function setup(): { cache: ScrubberCache; values: Map<string, string>; loads: () => number; tick: (ms: number) => void; bump: () => void } {
  const values = new Map<string, string>();
  for (let i = 0; i < 40; i++) values.set(`s${i}`, fake(`s${i}`));
  let loads = 0;
  let now = 1_000_000;
  let version = 0;
  const cache = new ScrubberCache(
    () => {
      loads++;
      return [...values].map(([n, v]) => new Secret(n, v));
    },
    undefined,
    undefined,
    () => version,
    () => now,
  );
  return { cache, values, loads: () => loads, tick: (ms) => void (now += ms), bump: () => void version++ };
}

it('loads the secret table once per recheck interval, not per response, and scrubs every secret', () => {
  const { cache, values, loads, tick } = setup();
  const all = [...values.values()].join(' ');
  for (let i = 0; i < 100; i++) {
    const out = cache.get().scrubString(all).text;
    for (const v of values.values()) assert.ok(!out.includes(v));
  }
  assert.equal(loads(), 1);
  tick(SECRETS_RECHECK_MS);
  cache.get();
  assert.equal(loads(), 2);
});

it('a secret rotated on disk is scrubbed once the recheck interval has passed', () => {
  const { cache, values, tick } = setup();
  cache.get();
  const next = fake('rotated');
  values.set('s3', next);
  tick(SECRETS_RECHECK_MS);
  assert.equal(cache.get().scrubString(`x ${next} y`).text, 'x [REDACTED:secret:s3] y');
});

it('an injected value the cache does not hold reloads at once: the new value is scrubbed, replaced by the handle', () => {
  const { cache, values, loads } = setup();
  cache.get();
  const next = fake('rotated');
  values.set('s7', next);
  const handle = `trt_${randomBytes(20).toString('base64url')}`;
  const s = cache.get([{ secret: 's7', handle, value: new Secret('s7', next) }]);
  assert.equal(loads(), 2);
  assert.equal(s.scrubString(`tok=${next}`).text, `tok=${handle}`);
  // Without the injection the same value gets the marker (another request's response).
  assert.equal(cache.get().scrubString(`tok=${next}`).text, 'tok=[REDACTED:secret:s7]');
});

it('a changed version (an OAuth capture) reloads at once', () => {
  const { cache, values, loads, bump } = setup();
  cache.get();
  const captured = fake('oauth');
  values.set('oauth:x:access:a', captured);
  bump();
  assert.equal(cache.get().scrubString(captured).text, '[REDACTED:secret:oauth:x:access:a]');
  assert.equal(loads(), 2);
});

it('a reload that finds the same values keeps the compiled scrubber', () => {
  const { cache, tick } = setup();
  const a = cache.get();
  tick(SECRETS_RECHECK_MS);
  assert.equal(cache.get(), a);
});
