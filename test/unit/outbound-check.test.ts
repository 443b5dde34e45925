/** The outbound body check (proxy/stages/outbound.ts): a secret split at any byte never leaves. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { bodyCheck, checkHead, findSecret } from '../../src/proxy/stages/outbound.js';

const SECRET = `fake_${randomBytes(16).toString('hex')}`;
const known = compileScrubber({ secrets: [{ name: 'api', value: SECRET, replacement: 'x' }], patterns: [] });

async function send(chunks: Buffer[]): Promise<{ out: Buffer; err: Error | null; found: string[] }> {
  const found: string[] = [];
  const c = bodyCheck(known, (f) => found.push(f.secret));
  const got: Buffer[] = [];
  const src = new PassThrough();
  const done = pipeline([src, ...c.streams, new Writable({ write: (b: Buffer, _e, cb) => (got.push(b), cb()) })]).then(
    () => null,
    (e: Error) => e,
  );
  for (const ch of chunks) src.write(ch);
  src.end();
  return { err: await done, out: Buffer.concat(got), found };
}

it('a secret split at every byte across two chunks is found, and none of its bytes is emitted', async () => {
  const body = Buffer.from(`${'a'.repeat(5000)} ${SECRET} tail`);
  const start = body.indexOf(SECRET);
  for (let cut = start - 2; cut <= start + SECRET.length + 1; cut++) {
    const r = await send([body.subarray(0, cut), body.subarray(cut)]);
    assert.equal(r.err?.message.includes('secret api'), true, `cut ${cut}`);
    assert.deepEqual(r.found, ['api']);
    assert.ok(r.out.length <= start, `cut ${cut}: ${r.out.length} bytes emitted, the secret starts at ${start}`);
  }
});

it('a body without a secret passes byte for byte, also in one-byte chunks', async () => {
  const body = randomBytes(20_000);
  const one = await send(
    [...body]
      .map((b) => Buffer.from([b]))
      .slice(0, 3000)
      .concat([body.subarray(3000)]),
  );
  assert.equal(one.err, null);
  assert.ok(one.out.equals(body));
});

it('head: the target and every header but Proxy-Authorization, in encoded forms and any case', () => {
  const b64 = Buffer.from(`u:${SECRET}`).toString('base64');
  assert.equal(findSecret(known, `/x?k=${SECRET.toUpperCase()}`), 'api');
  assert.equal(findSecret(known, `Authorization: Basic ${b64}`), 'api');
  // Letters escaped, mixed with literal ones, and a second layer: the target is decoded too.
  const hex = (i: number): string => SECRET.charCodeAt(i).toString(16);
  const mixed = `/x?k=%${hex(0)}${SECRET.slice(1, 6)}%25${hex(6)}${SECRET.slice(7).replace(/_/g, '%5f')}`;
  assert.throws(() => checkHead(known, mixed, [], () => undefined), /request target carries the value of secret api/);
  assert.equal(findSecret(known, '/nothing/here'), null);
  assert.doesNotThrow(() => checkHead(known, '/ok', ['Proxy-Authorization', `Basic ${Buffer.from(`a:${SECRET}`).toString('base64')}`], () => undefined));
  assert.throws(() => checkHead(known, '/ok', ['X-Ok', '1', 'X-Key', SECRET], () => undefined), /request header X-Key carries the value of secret api/);
});
