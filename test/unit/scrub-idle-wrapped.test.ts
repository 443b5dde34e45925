/**
 * The idle flush (an upstream pause of idleFlushMs: the proxy's SSE path) emits held bytes up
 * to the last line feed. Wrapped base64 (MIME, PEM-like) is the one finder that spans line
 * feeds: a secret's base64 split over two lines, with the pause right after the first, went out
 * in two halves neither of which matched, and the agent could join and decode them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import { compileScrubber } from '../../src/scrub/scrubber.js';

const VALUE = `fake_${randomBytes(12).toString('hex')}`;
const s = compileScrubber({ secrets: [{ name: 'w', value: VALUE, replacement: '[W]' }], patterns: [] });

/** Every base64 run of the text joined across line breaks, decoded at each of the 4 offsets. */
function decodesToSecret(text: string): boolean {
  const joined = text.replace(/\r?\n/g, '');
  for (const m of joined.matchAll(/[A-Za-z0-9+/]{8,}/g)) for (let o = 0; o < 4; o++) if (Buffer.from(m[0].slice(o), 'base64').toString('latin1').includes(VALUE)) return true;
  return false;
}

test('a pause right after any line of wrapped base64 does not split a secret out in halves', async () => {
  for (const [width, eol] of [
    [40, '\n'],
    [76, '\r\n'],
    [64, '\n'],
  ] as const) {
    const b64 = Buffer.from(`attachment: ${VALUE} :end of the attachment, more text to wrap`).toString('base64');
    const lines = b64.match(new RegExp(`.{1,${width}}`, 'g')) ?? [];
    for (let k = 1; k < lines.length; k++) {
      const st = s.createStream({ idleFlushMs: 1 });
      const out: Buffer[] = [];
      st.on('data', (c: Buffer) => out.push(c));
      // The head and the first k lines, then the pause: the idle flush emits the head.
      st.write(`Content-Type: text/plain${eol}${eol}${lines.slice(0, k).join(eol)}${eol}`);
      await once(st, 'data');
      st.end(`${lines.slice(k).join(eol)}${eol}`);
      await once(st, 'end');
      const text = Buffer.concat(out).toString('latin1');
      assert.ok(!decodesToSecret(text) && text.includes('[W]'), `${width} columns, pause after line ${k}: ${JSON.stringify(text)}`);
    }
  }
});

test('the idle flush still emits lines that cannot start a wrapped chain (SSE events, short lines)', async () => {
  const st = s.createStream({ idleFlushMs: 1 });
  const got: string[] = [];
  st.on('data', (c: Buffer) => got.push(c.toString('latin1')));
  const long = randomBytes(60).toString('base64');
  for (const event of [`data: ${long}\n\n`, 'data: short\n', `id: 7 ${long}.\n`]) {
    st.write(event);
    await once(st, 'data');
    assert.equal(got.join(''), event, 'flushed whole at the pause');
    got.length = 0;
  }
  // A line ending in a long base64 run may go on in the next line: held until it is known.
  st.write(`data: ${long}\n`);
  st.end('next\n');
  await once(st, 'end');
  assert.equal(got.join(''), `data: ${long}\nnext\n`);
});

test('a multi-line secret (a service-account JSON file) split by a pause at any of its line feeds is not sent out in parts', async () => {
  const key = randomBytes(10).toString('hex');
  const value = `{\n  "type": "service_account",\n  "private_key_id": "${key}",\r\n  "client_email": "bot@example.iam"\n}`;
  const sc = compileScrubber({ secrets: [{ name: 'sa', value, replacement: '[SA]' }], patterns: [] });
  const upper = value.replace(/[a-z]+/g, (m) => m.toUpperCase());
  for (const spelled of [value, upper]) {
    for (let nl = spelled.indexOf('\n'); nl >= 0; nl = spelled.indexOf('\n', nl + 1)) {
      const st = sc.createStream({ idleFlushMs: 1 });
      const out: Buffer[] = [];
      st.on('data', (c: Buffer) => out.push(c));
      st.write(`head\n${spelled.slice(0, nl + 1)}`);
      await once(st, 'data');
      st.end(`${spelled.slice(nl + 1)}\ntail\n`);
      await once(st, 'end');
      const text = Buffer.concat(out).toString('latin1');
      assert.equal(text, 'head\n[SA]\ntail\n', `pause after line feed at ${nl}`);
    }
  }
});
