/** Case-folded deny matching (policy/fold.ts), the websocket method class, query `_method`. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy } from '../../src/config/load.js';
import { decide } from '../../src/policy/decide.js';
import { foldPath } from '../../src/policy/fold.js';
import { methodOverrides } from '../../src/policy/override.js';
import { asksWebSocket, parseRequestLine } from '../../src/policy/request.js';
import type { Policy } from '../../src/policy/types.js';

function policy(rules: string): Policy {
  return compilePolicy([{ file: 'rules/t.yaml', text: `agents:\n  - name: a\nrules:\n${rules}\n` }]);
}
const ask = (p: Policy, line: string) => decide(p, parseRequestLine('a', line));

describe('case-folded denies', () => {
  const p = policy(
    [
      '  - { name: all, methods: [any], hosts: ["*"] }',
      '  - { name: no-admin, action: deny, methods: [any], hosts: ["*"], paths: ["/admin/**"] }',
      '  - { name: no-mixed, action: deny, methods: [any], hosts: ["*"], paths: ["/Secret/*.TXT"] }',
      '  - { name: no-re, action: deny, methods: [any], hosts: ["*"], path_regex: ["^/internal/[0-9]+$"] }',
    ].join('\n'),
  );
  const denied = [
    '/admin/users/42',
    '/ADMIN/users/42',
    '/Admin',
    '/aDmIn/',
    '/%41dmin/x',
    '/%61DMIN/x',
    '/adm%C4%B1n/x', // dotless ı upper-cases to I
    '/adm%C4%B0n/x', // Turkish İ lower-cases to i + U+0307, as a Turkish-locale server reads it: i
    '/%EF%BC%A1dmin/x', // fullwidth Ａ (NFKC → A)
    '/admin%EF%BC%8Fx', // fullwidth solidus: a separator after NFKC
    '/public/..%2F..%2FADMIN/x', // decoding-server view, then folded
    '/secret/a.txt',
    '/SECRET/B.Txt',
    '/%C5%BFecret/a.txt', // long s → S → s
    '/INTERNAL/42',
    '/Internal/7',
  ];
  for (const path of denied) {
    it(`denies ${path}`, () => {
      const d = ask(p, `DELETE https://shop.example${path}`);
      assert.equal(d.allow, false, path);
      assert.equal(d.code, 'policy_denied');
      assert.match(d.reason, /denied by rule no-/);
    });
  }
  it('the Kelvin sign folds to k in a deny pattern and a path', () => {
    const k = policy('  - { methods: [any], hosts: ["*"] }\n  - { name: no-keys, action: deny, methods: [any], hosts: ["*"], paths: ["/keys/**"] }');
    assert.equal(ask(k, 'GET https://h.example/%E2%84%AAeys/1').allow, false);
    assert.equal(ask(k, 'GET https://h.example/KEYS/1').allow, false);
    assert.equal(ask(k, 'GET https://h.example/monkeys/1').allow, true);
  });
  it('does not fold escapes of ASCII bytes or widen past a segment', () => {
    assert.equal(ask(p, 'GET https://shop.example/administrator').allow, true);
    assert.equal(ask(p, 'GET https://shop.example/x/admin').allow, true);
    assert.equal(ask(p, 'GET https://shop.example/secret/a/b.txt').allow, true);
    assert.equal(ask(p, 'GET https://shop.example/internal/4a').allow, true);
    assert.equal(foldPath('/A%2Fb%C5%BF'), '/a%2Fbs');
    assert.equal(foldPath('/%FF%FE/X'), '/%FF%FE/x', 'not UTF-8: escapes stay');
  });
  it('allows are not widened by folding: /PUBLIC is not /public', () => {
    const q = policy('  - { methods: [read], hosts: ["*"], paths: ["/public/**"] }');
    assert.equal(ask(q, 'GET https://h.example/public/a').allow, true);
    assert.equal(ask(q, 'GET https://h.example/PUBLIC/a').allow, false);
  });
});

describe('websocket method class', () => {
  const p = policy(
    [
      '  - { name: reads, methods: [read, GET], hosts: ["*"] }',
      '  - { name: chat, methods: [websocket], hosts: [chat.example], paths: ["/ws"] }',
      '  - { name: every, methods: [any], hosts: [any.example] }',
      '  - { name: no-ws-admin, action: deny, methods: [GET], hosts: [any.example], paths: ["/admin/**"] }',
    ].join('\n'),
  );
  it('read and GET do not cover an upgrade; websocket and any do', () => {
    const d = ask(p, 'websocket wss://other.example/ws');
    assert.equal(d.allow, false);
    assert.match(d.reason, /WebSocket upgrade/);
    assert.equal(ask(p, 'websocket wss://chat.example/ws').rule?.name, 'chat');
    assert.equal(ask(p, 'websocket wss://chat.example/other').allow, false);
    assert.equal(ask(p, 'websocket wss://any.example/x').rule?.name, 'every');
  });
  it('the websocket class alone allows no plain request', () => {
    assert.equal(ask(p, 'POST https://chat.example/ws').allow, false);
    assert.equal(ask(p, 'GET https://chat.example/ws').rule?.name, 'reads');
  });
  it('a deny naming GET refuses the upgrade too', () => {
    assert.equal(ask(p, 'websocket wss://any.example/admin/x').rule?.name, 'no-ws-admin');
  });
  it('plain ws:// needs http in schemes, like a write', () => {
    assert.equal(ask(p, 'websocket ws://chat.example/ws').code, 'https_required');
  });
  it('reads the Upgrade header in any spelling', () => {
    assert.equal(asksWebSocket({ upgrade: 'WebSocket' }), true);
    assert.equal(asksWebSocket({ upgrade: 'h2c, websocket/13' }), true);
    assert.equal(asksWebSocket({ upgrade: ['x', ' WEBSOCKET '] }), true);
    assert.equal(asksWebSocket({ upgrade: 'h2c' }), false);
    assert.equal(asksWebSocket({}), false);
  });
});

describe('more method overrides', () => {
  it('reads X-Original-Method, X-Original-HTTP-Method, X-Method and _method in the query', () => {
    assert.deepEqual(methodOverrides({ 'x-original-method': 'delete', 'x-original-http-method': 'PUT', 'x-method': 'patch' }), [
      { header: 'x-original-method', method: 'DELETE' },
      { header: 'x-original-http-method', method: 'PUT' },
      { header: 'x-method', method: 'PATCH' },
    ]);
    assert.deepEqual(methodOverrides({}, '/x?a=1&_method=delete'), [{ header: 'query _method', method: 'DELETE' }]);
    assert.deepEqual(methodOverrides({}, '/x?%5FMETHOD=Put&_method=get'), [
      { header: 'query _method', method: 'PUT' },
      { header: 'query _method', method: 'GET' },
    ]);
    assert.deepEqual(methodOverrides({}, '/x?_method=DE%20LETE'), [{ header: 'query _method', invalid: true }]);
    assert.deepEqual(methodOverrides({}, '/x?method=DELETE#_method=DELETE'), []);
  });
});
