/**
 * The per-request checks of the decide and inject stages answer the same once they allocate
 * nothing for the common request (docs/benchmarks.md "Hot path → Thirteenth pass → flowfast"):
 * whether the body is peeked (needsBody: the rule's agent, host, body schema and catalog entry
 * each count), whether a request asks for WebSocket, its method overrides, where a handle is
 * found (plain, encoded, after a look-alike prefix), and the outbound head check's one find. The
 * empty answers are now shared between requests (frozen: a caller that added to one would throw,
 * never leak into the next request); these tests pass on the code before that change too.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { compilePolicy } from '../../src/config/load.js';
import { needsBody } from '../../src/policy/catalog.js';
import { decide } from '../../src/policy/decide.js';
import { methodOverrides } from '../../src/policy/override.js';
import { asksWebSocket, parseRequestLine } from '../../src/policy/request.js';
import type { Policy, RequestFacts } from '../../src/policy/types.js';
import { findEncodedHandles } from '../../src/secrets/encoded.js';
import { issueHandle } from '../../src/secrets/handles.js';
import { injectHeaders, injectTarget } from '../../src/secrets/inject.js';
import { keyRingFrom } from '../../src/secrets/keys.js';
import { Secret } from '../../src/secrets/secret.js';
import type { InjectContext } from '../../src/secrets/resolve.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { checkHead, type OutboundFind } from '../../src/proxy/stages/outbound.js';

function policy(text: string): Policy {
  return compilePolicy([{ file: 'rules/t.yaml', text }]);
}

const facts = (o: Partial<RequestFacts>): RequestFacts => ({ agent: 'a', method: 'GET', scheme: 'https', host: 'a.example', port: 443, path: '/', ...o });

describe('needsBody: each condition of the rule counts, in any rule of the list', () => {
  const p = policy(
    [
      'agents: [{ name: a }, { name: b }]',
      'rules:',
      '  - { methods: [any], hosts: [plain.example] }',
      '  - { agents: [b], methods: [POST], hosts: [a.example], body_schema: { type: object } }',
      '  - { methods: [POST], hosts: ["*.schema.example"], body_schema: { type: object } }',
      '  - { methods: [POST], hosts: [mcp.example], catalog: [mcp] }',
      '  - { methods: [read], hosts: [gql.example], catalog: [graphql] }',
    ].join('\n'),
  );
  const cases: Array<[string, Partial<RequestFacts>, boolean]> = [
    ['no rule needs it', { host: 'plain.example', method: 'POST' }, false],
    ["another agent's schema rule", { host: 'a.example', method: 'POST' }, false],
    ['that agent', { agent: 'b', host: 'a.example', method: 'POST' }, true],
    ['a schema rule, any method, wildcard host', { host: 'x.schema.example' }, true],
    ['a schema rule, host not covered', { host: 'schema.example.net', method: 'POST' }, false],
    ['mcp: a POST', { host: 'mcp.example', method: 'POST' }, true],
    ['mcp: a GET', { host: 'mcp.example' }, false],
    ['graphql: a JSON POST', { host: 'gql.example', method: 'POST', contentType: 'application/json' }, true],
    ['graphql: a form POST', { host: 'gql.example', method: 'POST', contentType: 'text/plain' }, false],
    ['graphql: a GET', { host: 'gql.example' }, false],
  ];
  for (const [name, f, want] of cases) it(name, () => assert.equal(needsBody(p, facts(f)), want));
});

describe('asksWebSocket and method overrides', () => {
  it('no Upgrade field is no upgrade; every spelling of websocket is one', () => {
    assert.equal(asksWebSocket({}), false);
    assert.equal(asksWebSocket({ upgrade: undefined }), false);
    assert.equal(asksWebSocket({ upgrade: [] }), false);
    assert.equal(asksWebSocket({ upgrade: ['h2c', 'x, WebSocket'] }), true);
  });

  it('no override is an empty list; the next request with one gets its own, and the one after none again', () => {
    const none = methodOverrides({ host: 'a' }, '/x?a=1');
    assert.deepEqual(none, []);
    assert.deepEqual(methodOverrides({ 'x-http-method-override': 'delete' }, '/x?_method=put'), [
      { header: 'x-http-method-override', method: 'DELETE' },
      { header: 'query _method', method: 'PUT' },
    ]);
    assert.deepEqual(methodOverrides({}), []);
  });

  it('an override is decided for both methods: a read-only agent cannot delete through one', () => {
    const p = policy('agents: [{ name: a }]\nrules:\n  - { methods: [read], hosts: [a.example] }\n');
    assert.equal(decide(p, parseRequestLine('a', 'GET https://a.example/x')).allow, true);
    assert.equal(decide(p, parseRequestLine('a', 'DELETE https://a.example/x')).allow, false);
  });
});

describe('handles: found wherever they are, whatever precedes them', () => {
  const ring = keyRingFrom(randomBytes(32));
  const VALUE = `fake_${randomBytes(12).toString('hex')}`;
  const p = policy(`agents: [{ name: a }]\nsecrets:\n  - { name: s, from: { env: S }, hosts: [a.example] }\nrules: []\n`);
  const ctx: InjectContext = {
    ring,
    policy: p,
    isRevoked: () => false,
    secretValue: (d) => new Secret(d.name, VALUE),
    revoke: () => undefined,
    agent: 'a',
    method: 'GET',
    scheme: 'https',
    host: 'a.example',
    port: 443,
    path: '/',
  };
  const handle = issueHandle(ring, { agent: 'a', secret: 's', ttlSeconds: 60 }).handle;
  /** `fn` throws a TurretError with `want` as its code. */
  const refused = (fn: () => unknown, want: string): void => void assert.throws(fn, (e: { code?: string }) => e.code === want, want);

  it('clean text with look-alikes: nothing found, the target goes as it came', () => {
    const none = findEncodedHandles('GET /repos?q=trt-like%20text TRT_ABC dHJ0 RydG');
    assert.deepEqual(none, []);
    assert.equal(injectTarget(ctx, '/a?b=trt%5Fnot', new Map()), '/a?b=trt%5Fnot');
  });

  it('a handle at the very start, after look-alike prefixes, percent- or base64-encoded: each refused where it may not go, injected where it may', () => {
    refused(() => injectTarget(ctx, `/${handle}`, new Map()), 'handle_location_unsupported');
    // Glued to a look-alike prefix it reads as one longer handle, which does not open: refused all the same.
    refused(() => injectTarget(ctx, `/trt_trt${handle}`, new Map()), 'handle_invalid');
    refused(() => injectTarget(ctx, `/trt_ ${handle}`, new Map()), 'handle_location_unsupported');
    refused(() => injectHeaders(ctx, [['x-a', `TRT_ ${handle}`]], new Map()), 'handle_location_unsupported');
    refused(() => injectHeaders(ctx, [['x-a', encodeURIComponent(handle).replace('_', '%5F')]], new Map()), 'handle_location_unsupported');
    refused(() => injectHeaders(ctx, [['x-a', Buffer.from(handle).toString('base64')]], new Map()), 'handle_location_unsupported');
    const out = injectHeaders(ctx, [['authorization', `Bearer ${handle}`]], new Map());
    assert.deepEqual(out, [['authorization', `Bearer ${VALUE}`]]);
  });
});

describe('the outbound head check records its find once and refuses', () => {
  const SECRET = `fake_${randomBytes(16).toString('hex')}`;
  const known = compileScrubber({ secrets: [{ name: 'api', value: SECRET, replacement: '[R]' }], patterns: [] });

  it('a secret in the target or a header: one find, named where it was, and the check refuses without the value', () => {
    for (const [url, raw, where] of [
      [`/x?k=${SECRET}`, [] as string[], 'the request target'],
      ['/x', ['X-Ok', '1', 'X-Key', `v ${SECRET}`], 'the request header X-Key'],
    ] as const) {
      const finds: OutboundFind[] = [];
      assert.throws(
        () => checkHead(known, url, raw, (f) => void finds.push(f)),
        (e: { code?: string; message?: string }) => e.code === 'secret_in_request' && !String(e.message).includes(SECRET),
      );
      assert.deepEqual(finds, [{ secret: 'api', where }]);
    }
  });

  it('a clean head: no find, no refusal', () => {
    let called = 0;
    checkHead(known, '/x', ['Accept', '*/*'], () => void called++);
    assert.equal(called, 0);
  });
});
