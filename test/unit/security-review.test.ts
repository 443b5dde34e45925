/**
 * Adversarial review, without sockets (docs/security.md, "Reviewed attacks"): spellings of a real
 * secret an upstream can hand back that the scrubber missed, a handle in a header name, and the
 * unframing of a raw response body that a chunk line or a content coding would otherwise hide a
 * secret in. Each case failed before its fix.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { compilePolicy } from '../../src/config/load.js';
import { issueHandle } from '../../src/secrets/handles.js';
import { injectHeaders, type Used } from '../../src/secrets/inject.js';
import { keyRingFrom } from '../../src/secrets/keys.js';
import type { InjectContext } from '../../src/secrets/resolve.js';
import { Secret } from '../../src/secrets/secret.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';

const SECRET = `fake_Sec_${randomBytes(16).toString('base64url')}`;
const scrubber = compileScrubber({ secrets: [{ name: 's', value: SECRET, replacement: '[H]' }], patterns: [] });

async function streamed(input: Buffer, size: number): Promise<Buffer> {
  const s = scrubber.createStream();
  const out: Buffer[] = [];
  s.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((r) => s.on('end', r));
  for (let i = 0; i < input.length; i += size) s.write(input.subarray(i, i + size));
  s.end();
  await done;
  return Buffer.concat(out);
}

describe('scrubber: spellings an upstream can reflect', () => {
  const hex = Buffer.from(SECRET).toString('hex');
  const forms: Record<string, Buffer> = {
    'upper case': Buffer.from(SECRET.toUpperCase()),
    'lower case': Buffer.from(SECRET.toLowerCase()),
    'hex, lower': Buffer.from(hex),
    'hex, upper': Buffer.from(hex.toUpperCase()),
    'UTF-16LE': Buffer.from(SECRET, 'utf16le'),
    'UTF-16BE': Buffer.from(SECRET, 'utf16le').swap16(),
  };
  for (const [name, bytes] of Object.entries(forms)) {
    it(`${name}: replaced whole, in one buffer and dribbled in 3-byte chunks`, async () => {
      const input = Buffer.concat([Buffer.from('before '), bytes, Buffer.from(' after')]);
      for (const out of [scrubber.scrubBuffer(input).buf, await streamed(input, 3)]) {
        assert.equal(out.toString('latin1'), 'before [H] after');
      }
    });
  }

  it('hex of other text and a case-changed near miss are left alone', () => {
    const near = SECRET.slice(0, -1).toUpperCase();
    const text = `${Buffer.from('hello world, nothing secret').toString('hex')} ${near}`;
    assert.equal(scrubber.scrubString(text).text, text);
  });
});

describe('a handle in a request header name', () => {
  const ring = keyRingFrom(randomBytes(32));
  const policy = compilePolicy([{ file: 't.yaml', text: 'agents: [{ name: a }]\nsecrets:\n  - { name: gh, from: { env: GH }, hosts: [api.example.com] }\nrules: []\n' }]);
  const ctx = (host: string): InjectContext => ({
    ring,
    policy,
    isRevoked: () => false,
    secretValue: (d) => new Secret(d.name, SECRET),
    agent: 'a',
    method: 'GET',
    scheme: 'https',
    host,
    port: 443,
    path: '/',
  });
  const handle = issueHandle(ring, { agent: 'a', secret: 'gh', ttlSeconds: 3600 }).handle;
  const code = (host: string, name: string): string | undefined => {
    try {
      injectHeaders(ctx(host), [[name, 'x']], new Map() as Used);
      return undefined;
    } catch (e) {
      return (e as { code?: string }).code;
    }
  };

  it('toward an unbound host is a misuse, not forwarded as sent', () => {
    assert.equal(code('evil.example.net', `x-${handle}`), 'handle_host_not_bound');
  });
  it('toward the bound host is refused too: a name is not an injection point', () => {
    assert.equal(code('api.example.com', `x-${handle}`), 'handle_location_unsupported');
  });
  it('base64-encoded in a name is refused', () => {
    assert.equal(code('evil.example.net', `x-${Buffer.from(`:${handle}`).toString('base64').replace(/[=/]/g, '')}`), 'handle_host_not_bound');
  });
});
