/** The read-shaped-writes catalog: git smart HTTP and GraphQL, and rules that opt in. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy } from '../../src/config/load.js';
import { operationKinds } from '../../src/policy/catalog.js';
import { decide } from '../../src/policy/decide.js';
import { parseRequestLine } from '../../src/policy/request.js';

const GIT_UP = 'application/x-git-upload-pack-request';
const p = compilePolicy([
  {
    file: 't.yaml',
    text: `agents: [{ name: a }]
rules:
  - { name: ro, methods: [read], hosts: [gh.test], catalog: [git, graphql] }
  - { name: plain, methods: [read], hosts: [other.test] }
  - { name: rw, methods: [read, write], hosts: [rw.test], catalog: [git] }
`,
  },
]);
const ask = (line: string, contentType?: string, body?: string) => decide(p, parseRequestLine('a', line, { contentType, body }));

describe('git smart HTTP', () => {
  it('clone/fetch is a read for a rule that opts in', () => {
    assert.equal(ask('GET https://gh.test/o/r.git/info/refs?service=git-upload-pack').allow, true);
    const d = ask('POST https://gh.test/o/r.git/git-upload-pack', GIT_UP);
    assert.equal(d.allow, true);
    assert.equal(d.shape, 'git fetch (upload-pack)');
  });
  it('push (and its discovery GET) is a write', () => {
    assert.equal(ask('GET https://gh.test/o/r.git/info/refs?service=git-receive-pack').allow, false);
    assert.equal(ask('GET https://gh.test/o/r.git/info/refs?service=git-upload-pack&service=git-receive-pack').allow, false);
    assert.equal(ask('POST https://gh.test/o/r.git/git-receive-pack', 'application/x-git-receive-pack-request').allow, false);
    assert.equal(ask('GET https://rw.test/o/r.git/info/refs?service=git-receive-pack').allow, true);
    assert.equal(ask('POST https://rw.test/o/r.git/git-receive-pack', 'application/x-git-receive-pack-request').allow, true);
  });
  it('a POST that only looks like a fetch stays a write', () => {
    assert.equal(ask('POST https://gh.test/o/r.git/git-upload-pack', 'application/json').allow, false);
    assert.equal(ask('POST https://gh.test/o/r.git/git-upload-pack/x', GIT_UP).allow, false);
    assert.equal(ask('POST https://gh.test/x/git-receive-pack/../git-upload-pack%2F..%2Fgit-receive-pack', GIT_UP).allow, false);
  });
  it('rules without the catalog entry go by method only', () => {
    assert.equal(ask('POST https://other.test/o/r.git/git-upload-pack', GIT_UP).allow, false);
    assert.equal(ask('GET https://other.test/o/r.git/info/refs?service=git-receive-pack').allow, true);
  });
});

describe('GraphQL', () => {
  const json = (q: string) => JSON.stringify({ query: q });
  it('queries are reads, mutations and subscriptions writes', () => {
    assert.equal(ask('POST https://gh.test/graphql', 'application/json', json('{ viewer { login } }')).allow, true);
    assert.equal(ask('POST https://gh.test/graphql', 'application/json', json('query Q($n: Int) { a(first: $n) { b } } fragment F on T { x }')).allow, true);
    assert.equal(ask('POST https://gh.test/graphql', 'application/json', json('mutation { addStar(input: {}) { x } }')).allow, false);
    assert.equal(ask('POST https://gh.test/graphql', 'application/json', json('subscription { s }')).allow, false);
    assert.equal(ask('POST https://gh.test/graphql', 'application/graphql', 'query { a }').allow, true);
  });
  it('hostile documents: a mutation hidden after a query, in a batch, or an unreadable body is a write', () => {
    for (const body of [
      json('query A { a } mutation B { b }'),
      JSON.stringify([{ query: '{ a }' }, { query: 'mutation { b }' }]),
      json('# mutation in a comment\n{ a } mutation { b }'),
      JSON.stringify({ extensions: { persistedQuery: { sha256Hash: 'x' } } }),
      '{"query": "{ a }"',
      json('{ a'),
      json('{ a } }{'),
      json('mutatio { a }'),
    ]) {
      assert.equal(ask('POST https://gh.test/graphql', 'application/json', body).allow, false, body);
    }
    assert.equal(ask('POST https://gh.test/graphql', 'application/json').allow, false, 'body not peeked');
    assert.equal(ask('POST https://gh.test/graphql', 'application/json', json('{ a(s: "mutation { x }") }')).allow, true, 'a keyword inside a string does not count');
  });
  it('over GET: a mutation in ?query= is a write', () => {
    assert.equal(ask('GET https://gh.test/graphql?query=%7B%20a%20%7D').allow, true);
    assert.equal(ask('GET https://gh.test/graphql?query=mutation%20%7B%20a%20%7D').allow, false);
  });
  it('operationKinds reads the top level only', () => {
    assert.deepEqual(operationKinds('{ a { mutation } }'), ['query']);
    assert.deepEqual(operationKinds('query { a } mutation { b }'), ['query', 'mutation']);
    assert.deepEqual(operationKinds('"""block { mutation }""" query { a }'), ['query'], 'a keyword inside a block string does not count');
  });
});
