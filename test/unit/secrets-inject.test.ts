/**
 * Injection without sockets: where a handle may go (headers, query, body), what each misuse is
 * called, scope and variants, encoded handles, and streaming body substitution across chunk
 * boundaries. Secrets are random per run; every output is checked for them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { compilePolicy } from '../../src/config/load.js';
import { bodyTransform, MAX_REWRITTEN_BODY, prepareRequestBody } from '../../src/secrets/body.js';
import { findEncodedHandles } from '../../src/secrets/encoded.js';
import { issueHandle, type HandleClaims } from '../../src/secrets/handles.js';
import { injectHeaders, injectTarget, type Used } from '../../src/secrets/inject.js';
import { keyRingFrom } from '../../src/secrets/keys.js';
import type { InjectContext } from '../../src/secrets/resolve.js';
import { Secret } from '../../src/secrets/secret.js';

const ring = keyRingFrom(randomBytes(32));
const VALUES: Record<string, string> = {
  gh: `fake_gh_${randomBytes(12).toString('hex')}`,
  'gh-write': `fake_ghw_${randomBytes(12).toString('hex')}`,
  q: `fake q&v=${randomBytes(6).toString('hex')}`,
  b: `fake_body_${randomBytes(12).toString('hex')}`,
};
const policy = compilePolicy([
  {
    file: 't.yaml',
    text: `
agents: [{ name: a }, { name: b }]
secrets:
  - name: gh
    from: { env: GH }
    hosts: [api.example.com]
    on_misuse: revoke
    variants: [{ methods: [write], paths: ["/repos/acme/**"], secret: gh-write }]
    methods: [read, POST]
  - name: gh-write
    from: { env: GHW }
    hosts: [api.example.com]
    methods: [POST]
    paths: ["/repos/acme/**"]
  - name: q
    from: { env: Q }
    hosts: [q.example.com]
    query: true
  - name: b
    from: { env: B }
    hosts: [b.example.com]
    body: true
rules: []
`,
  },
]);

function ctx(over: Partial<InjectContext> = {}): InjectContext & { revoked: HandleClaims[] } {
  const revoked: HandleClaims[] = [];
  return {
    ring,
    policy,
    isRevoked: () => false,
    secretValue: (d) => new Secret(d.name, VALUES[d.name] ?? ''),
    revoke: (c) => revoked.push(c),
    agent: 'a',
    method: 'GET',
    scheme: 'https',
    host: 'api.example.com',
    port: 443,
    path: '/repos/acme/x',
    revoked,
    ...over,
  };
}
const h = (secret: string, agent = 'a', ttlSeconds = 3600): string => issueHandle(ring, { agent, secret, ttlSeconds }).handle;
const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
};
const noSecret = (s: string): void => {
  for (const v of Object.values(VALUES)) assert.ok(!s.includes(v), 'output holds a secret value');
};

describe('header and target injection', () => {
  it('picks the write variant for an approved write and the read token otherwise', () => {
    const t = h('gh');
    const used: Used = new Map();
    const w = injectHeaders(ctx({ method: 'POST' }), [['authorization', `Bearer ${t}`]], used);
    assert.equal(w[0]?.[1], `Bearer ${VALUES['gh-write']}`);
    assert.equal([...used.values()][0]?.secret, 'gh-write');
    const r = injectHeaders(ctx({ method: 'GET' }), [['authorization', `token ${t}`]], new Map());
    assert.equal(r[0]?.[1], `token ${VALUES.gh}`);
  });

  it('a handle in the first, a middle or the last header (or none): every header out in order, each handle injected, the list handed in never changed', () => {
    const t = h('gh');
    const clean: Array<[string, string]> = [
      ['host', 'api.example.com'],
      ['accept', '*/*'],
      ['x-a', 'one'],
    ];
    for (const at of [-1, 0, 1, 3]) {
      const given = clean.map(([k, v]): [string, string] => [k, v]);
      if (at >= 0) given.splice(at, 0, ['Authorization', `Bearer ${t}`]);
      const before = JSON.stringify(given);
      const used: Used = new Map();
      const out = injectHeaders(ctx(), given, used);
      assert.equal(JSON.stringify(given), before, `at ${at}: the given list is unchanged`);
      const want = given.map(([k, v]): [string, string] => [k, k === 'Authorization' ? `Bearer ${VALUES.gh}` : v]);
      assert.deepEqual(out, want, `at ${at}`);
      assert.equal(used.size, at >= 0 ? 1 : 0, `at ${at}: injections`);
      if (at < 0) noSecret(JSON.stringify(out));
    }
    // A handle where none may go, after clean headers and after an injected one: refused, whatever came first.
    for (const late of [
      ['cookie', `s=${t}`],
      ['x-b', Buffer.from(t).toString('base64')],
      [`x-${t}`, 'v'],
    ] as Array<[string, string]>) {
      assert.equal(
        code(() => injectHeaders(ctx(), [...clean, ['authorization', `Bearer ${t}`], late], new Map())),
        'handle_location_unsupported',
        late[0].slice(0, 12),
      );
    }
  });

  it('names every misuse with its own code and revokes on misuse when the secret says so', () => {
    const t = h('gh');
    const cases: Array<[Partial<InjectContext>, string, string]> = [
      [{ host: 'evil.example.net' }, 'handle_host_not_bound', t],
      [{ agent: 'b' }, 'handle_wrong_agent', t],
      [{ scheme: 'http', port: 80 }, 'handle_plain_http', t],
      [{ method: 'DELETE', path: '/user' }, 'handle_scope_denied', t],
      [{}, 'handle_expired', h('gh', 'a', -5)],
      [{ isRevoked: () => true }, 'handle_revoked', t],
      [{}, 'handle_invalid', t.slice(0, -2) + (t.endsWith('AA') ? 'BB' : 'AA')],
    ];
    for (const [over, want, handle] of cases) {
      const c = ctx(over);
      assert.equal(
        code(() => injectHeaders(c, [['authorization', `Bearer ${handle}`]], new Map())),
        want,
        want,
      );
      const revokes = ['handle_host_not_bound', 'handle_wrong_agent', 'handle_plain_http', 'handle_scope_denied'].includes(want);
      assert.equal(c.revoked.length, revokes ? 1 : 0, `${want} revocation`);
    }
  });

  it('refuses handles in other headers, the path, and in the query unless the secret opts in', () => {
    assert.equal(
      code(() => injectHeaders(ctx(), [['cookie', `s=${h('gh')}`]], new Map())),
      'handle_location_unsupported',
    );
    assert.equal(
      code(() => injectTarget(ctx(), `/repos/${h('gh')}`, new Map())),
      'handle_location_unsupported',
    );
    assert.equal(
      code(() => injectTarget(ctx(), `/x?token=${h('gh')}`, new Map())),
      'handle_location_unsupported',
    );
    const qc = ctx({ host: 'q.example.com', path: '/search' });
    const out = injectTarget(qc, `/search?a=1&key=${h('q')}&b=2`, new Map());
    assert.equal(out, `/search?a=1&key=${encodeURIComponent(VALUES.q!).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}&b=2`);
    assert.equal(new URLSearchParams(out.split('?')[1]).get('key'), VALUES.q, 'the value is percent-encoded, not spliced raw');
    assert.equal(
      code(() => injectTarget(qc, `/search?${h('q')}=1`, new Map())),
      'handle_location_unsupported',
    );
  });

  it('refuses percent- and base64-encoded handles toward an unbound host with the misuse code', () => {
    const t = h('gh');
    const pct = [...t].map((ch) => `%${ch.charCodeAt(0).toString(16)}`).join('');
    const evil = ctx({ host: 'evil.example.net' });
    for (const [where, run] of [
      ['path', () => injectTarget(evil, `/p/${pct}`, new Map())],
      ['double-encoded query', () => injectTarget(evil, `/p?x=${encodeURIComponent(pct)}`, new Map())],
      ['base64 header', () => injectHeaders(evil, [['x-data', Buffer.from(`{"t":"${t}"}`).toString('base64')]], new Map())],
      ['base64url header, shifted', () => injectHeaders(evil, [['x-data', Buffer.from(`ab${t}`).toString('base64url')]], new Map())],
      ['base64 in Bearer', () => injectHeaders(evil, [['authorization', `Bearer ${Buffer.from(t).toString('base64')}`]], new Map())],
    ] as const) {
      assert.equal(code(run), 'handle_host_not_bound', where);
    }
    assert.equal(evil.revoked.length, 5);
    assert.equal(
      code(() => injectHeaders(ctx(), [['x-data', Buffer.from(t).toString('base64')]], new Map())),
      'handle_location_unsupported',
      'encoded toward a bound host is still refused',
    );
  });

  it('finds each base64 alignment and ignores look-alike noise', () => {
    const t = h('gh');
    for (let pad = 0; pad < 3; pad++) {
      assert.deepEqual(findEncodedHandles(`x ${Buffer.from('.'.repeat(pad) + t + '"').toString('base64')} y`), [t], `alignment ${pad}`);
    }
    assert.deepEqual(findEncodedHandles(`dHJ0X RydF 0cnRf ${randomBytes(3000).toString('base64')} %74%72%74%5f`), []);
  });
});

async function run(c: InjectContext, mode: 'inject' | 'scan', pieces: string[], length?: string): Promise<{ body: string; length: string | undefined; used: Used }> {
  const used: Used = new Map();
  const r = await prepareRequestBody(Readable.from(pieces.map((p) => Buffer.from(p))), length, {
    buffered: null,
    transforms: [bodyTransform(c, mode, used)],
    changesLength: mode === 'inject',
    limit: MAX_REWRITTEN_BODY,
  });
  const parts: Buffer[] = [];
  if (Buffer.isBuffer(r.body)) parts.push(r.body);
  else for await (const x of r.body as Readable) parts.push(x as Buffer);
  return { body: Buffer.concat(parts).toString(), length: r.length, used };
}

describe('request bodies', () => {
  const bc = (): ReturnType<typeof ctx> => ctx({ host: 'b.example.com', method: 'POST', path: '/api' });

  it('substitutes a handle split across every possible chunk boundary and corrects Content-Length', async () => {
    const t = h('b');
    const body = `{"token":"${t}","n":1}`;
    for (let cut = 1; cut < body.length; cut += 7) {
      const r = await run(bc(), 'inject', [body.slice(0, cut), body.slice(cut)], String(body.length));
      assert.equal(r.body, `{"token":"${VALUES.b}","n":1}`);
      assert.equal(r.length, String(Buffer.byteLength(r.body)));
    }
  });

  it('streams with chunked framing when no length was declared, holding only a bounded window', async () => {
    const t = h('b');
    const filler = 'x'.repeat(100_000);
    const r = await run(bc(), 'inject', [filler, `a=${t.slice(0, 10)}`, `${t.slice(10)}&z=1`]);
    assert.equal(r.length, undefined);
    assert.equal(r.body, `${filler}a=${VALUES.b}&z=1`);
  });

  it('refuses a handle of a secret without body opt-in, and any handle in scan mode', async () => {
    await assert.rejects(run(bc(), 'inject', [`x=${h('q')}`], '200'), (e: { code?: string }) => e.code === 'handle_host_not_bound');
    await assert.rejects(run(ctx({ host: 'b.example.com' }), 'scan', ['abc', `x=${h('b')}`], '200'), (e: { code?: string }) => e.code === 'handle_location_unsupported');
    await assert.rejects(
      run(ctx({ host: 'evil.example.net' }), 'scan', [Buffer.from(h('b')).toString('base64')], '300'),
      (e: { code?: string }) => e.code === 'handle_host_not_bound',
    );
  });

  it('passes ordinary bodies through unchanged in scan mode', async () => {
    const body = `trt_short ${randomBytes(5000).toString('base64')} %74%72 end`;
    const r = await run(ctx(), 'scan', [body.slice(0, 1000), body.slice(1000)], String(body.length));
    assert.equal(r.body, body);
    noSecret(r.body);
  });
});
