/**
 * A long secret (a config file, a certificate bundle) whose longest forms exceed the default
 * hold's window (maxHoldBytes / 2 − 64 = 32 704 bytes): streamed in 16 KiB writes, each of its
 * forms straddled a scan and passed (the every-character `\uXXXX` form of a 12 KB secret is
 * 72 KB). The default hold now fits two of its longest forms (up to a 2 MiB cap).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { secretNeedles } from '../../src/scrub/encodings.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';

test('every form of a 12 KB and a 40 KB secret is redacted in a stream of 16 KiB writes', async () => {
  for (const len of [12_000, 40_000]) {
    const value = randomBytes(len / 2).toString('hex');
    const s = compileScrubber({ secrets: [{ name: 'big', value, replacement: '[BIG]' }], patterns: [] });
    for (const n of secretNeedles(value)) {
      const body = Buffer.concat([Buffer.alloc(3000, ' '), Buffer.from(n.bytes, 'latin1'), Buffer.alloc(3000, ' ')]);
      const inc = s.createIncremental();
      const out: Buffer[] = [];
      for (let i = 0; i < body.length; i += 16384) out.push(inc.write(body.subarray(i, i + 16384)));
      out.push(inc.end());
      const text = Buffer.concat(out).toString('latin1');
      assert.equal(text.trim(), '[BIG]', `${len}: ${n.form} (${n.bytes.length} bytes) in 16 KiB writes`);
      // The Transform the proxy uses, with its default hold.
      const st = s.createStream();
      const got: Buffer[] = [];
      st.on('data', (c: Buffer) => got.push(c));
      for (let i = 0; i < body.length; i += 16384) st.write(body.subarray(i, i + 16384));
      st.end();
      await new Promise((r) => st.on('end', r));
      assert.equal(Buffer.concat(got).toString('latin1').trim(), '[BIG]', `${len}: ${n.form} through createStream`);
    }
  }
});
