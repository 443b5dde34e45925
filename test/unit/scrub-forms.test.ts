/**
 * HTML-escaped, numeric-character-reference and fully \u-escaped spellings of a known secret (an
 * error page or a serialiser quoting the injected credential) are replaced like the raw value,
 * whole and when the stream is fed one byte at a time.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { compileScrubber } from '../../src/scrub/scrubber.js';

const VALUE = `fake&<"'>${randomBytes(6).toString('hex')}`;
const s = compileScrubber({ secrets: [{ name: 'k', value: VALUE, replacement: '[K]' }], patterns: [] });

function streamed(text: string): string {
  const st = s.createStream();
  const out: Buffer[] = [];
  st.on('data', (c: Buffer) => out.push(c));
  for (const b of Buffer.from(text)) st.write(Buffer.from([b]));
  st.end();
  return Buffer.concat(out).toString();
}

const forms: Record<string, string> = {
  'html escaped': VALUE.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;'),
  'decimal references': [...VALUE].map((c) => `&#${c.charCodeAt(0)};`).join(''),
  'hex references (upper case)': [...VALUE].map((c) => `&#X${c.charCodeAt(0).toString(16).toUpperCase()};`).join(''),
  'every char \\u-escaped': [...VALUE].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''),
  'every char \\u-escaped, upper-case hex': [...VALUE].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`).join(''),
};

for (const [name, form] of Object.entries(forms)) {
  it(`replaces the ${name} form`, () => {
    const text = `<p>bad token ${form} given</p>`;
    assert.equal(s.scrubString(text).text, '<p>bad token [K] given</p>');
    assert.equal(streamed(text), '<p>bad token [K] given</p>');
  });
}

it('leaves a near miss alone', () => {
  const near = forms['decimal references']!.slice(0, -6);
  assert.equal(s.scrubString(`x ${near} y`).text, `x ${near} y`);
});
