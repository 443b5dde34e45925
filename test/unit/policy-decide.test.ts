/** decide(): precedence, method classes, hosts, paths, query, HTTPS-only writes, until, includes. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy } from '../../src/config/load.js';
import { decide, decideTunnel, explain } from '../../src/policy/decide.js';
import { parseRequestLine } from '../../src/policy/request.js';
import type { Policy } from '../../src/policy/types.js';

function policy(rules: string, extra = ''): Policy {
  return compilePolicy([{ file: 'rules/t.yaml', text: `agents:\n  - name: a\n  - name: b\nrules:\n${rules}\n${extra}` }]);
}
const ask = (p: Policy, line: string, agent = 'a', o: { contentType?: string; body?: string } = {}, now?: number) => decide(p, parseRequestLine(agent, line, o), now);

describe('method classes', () => {
  const p = policy(
    `  - { name: r, methods: [read], hosts: ["*"] }\n  - { name: w, methods: [write], hosts: [api.example.com] }\n  - { name: x, methods: [PROPFIND], hosts: [dav.example.com] }`,
  );
  it('reads anywhere, writes only to approved hosts', () => {
    for (const m of ['GET', 'HEAD', 'OPTIONS']) assert.equal(ask(p, `${m} https://anything.example.org/x`).allow, true, m);
    for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      assert.equal(ask(p, `${m} https://anything.example.org/x`).allow, false, m);
      assert.equal(ask(p, `${m} https://api.example.com/x`).rule?.name, 'w', m);
    }
  });
  it('explicit methods match only themselves', () => {
    assert.equal(ask(p, 'PROPFIND https://dav.example.com/').allow, true);
    assert.equal(ask(p, 'MKCOL https://dav.example.com/').allow, false);
  });
  it('refuses TRACE, TRACK and CONNECT whatever the rules say', () => {
    const any = policy(`  - { methods: any, hosts: ["*"] }`);
    for (const m of ['TRACE', 'TRACK', 'CONNECT']) {
      const d = ask(any, `${m} https://example.com/`);
      assert.equal(d.allow, false);
      assert.equal(d.code, 'method_forbidden');
    }
  });
});

describe('hosts and ports', () => {
  const p = policy(`  - { methods: [read], hosts: ["bücher.example", "*.suffix.test", "api.test:8443", "any.test:*"] }`);
  it('matches Unicode and punycode spellings of the same host, both ways', () => {
    assert.equal(ask(p, 'GET https://xn--bcher-kva.example/').allow, true);
    assert.equal(ask(p, 'GET https://BÜCHER.example./').allow, true);
    const q = policy(`  - { methods: [read], hosts: ["xn--bcher-kva.example"] }`);
    assert.equal(ask(q, 'GET https://bücher.example/').allow, true);
  });
  it('*.suffix matches subdomains only, not the bare name or a look-alike suffix', () => {
    assert.equal(ask(p, 'GET https://a.b.suffix.test/').allow, true);
    assert.equal(ask(p, 'GET https://suffix.test/').allow, false);
    assert.equal(ask(p, 'GET https://evilsuffix.test/').allow, false);
    assert.equal(ask(p, 'GET https://suffix.test.evil.com/').allow, false);
  });
  it('ports: default only, a named port, or any', () => {
    assert.equal(ask(p, 'GET https://api.test:8443/').allow, true);
    assert.equal(ask(p, 'GET https://api.test/').allow, false);
    assert.equal(ask(p, 'GET https://bücher.example:8443/').allow, false);
    assert.equal(ask(p, 'GET https://any.test:1/').allow, true);
  });
});

describe('paths', () => {
  const p = policy(`  - { methods: [read], hosts: [h.test], paths: ["/public/**", "/files/*.txt"] }\n  - { methods: [read], hosts: [r.test], path_regex: ["^/v[0-9]+/items$"] }`);
  it('globs: * within a segment, ** any depth', () => {
    assert.equal(ask(p, 'GET https://h.test/public').allow, true);
    assert.equal(ask(p, 'GET https://h.test/public/a/b/c').allow, true);
    assert.equal(ask(p, 'GET https://h.test/files/a.txt').allow, true);
    assert.equal(ask(p, 'GET https://h.test/files/a/b.txt').allow, false);
    assert.equal(ask(p, 'GET https://h.test/publicx').allow, false);
  });
  it('normalisation: dot segments, encoded dots, duplicate slashes, %2F, backslashes and ;params cannot escape', () => {
    for (const path of [
      '/public/../admin',
      '/public/%2e%2e/admin',
      '/public/%2E%2E/admin',
      '/public/..%2F..%2Fadmin',
      '/public/..%2fadmin',
      '/public/..%5Cadmin',
      '/public/..\\admin',
      '/public/..;/admin',
      '/files/..%2Fsecret.txt',
    ]) {
      assert.equal(ask(p, `GET https://h.test${path}`).allow, false, path);
    }
    for (const path of ['//public//a', '/x/../public/a', '/%70ublic/a', '/public/./a']) assert.equal(ask(p, `GET https://h.test${path}`).allow, true, path);
  });
  it('regexes run on re2 against the normalised path', () => {
    assert.equal(ask(p, 'GET https://r.test/v2/items').allow, true);
    assert.equal(ask(p, 'GET https://r.test/v2/items/../items').allow, true);
    assert.equal(ask(p, 'GET https://r.test/v2/itemsx').allow, false);
  });
  it('a deny on a path applies under every view of the path', () => {
    const d = policy(`  - { methods: [read], hosts: [h.test] }\n  - { action: deny, methods: any, hosts: [h.test], paths: ["/admin/**"] }`);
    for (const path of ['/admin', '/admin/x', '/x/..%2Fadmin/y', '//admin', '/ADMIN/../admin/', '/a/..;/admin'])
      assert.equal(ask(d, `GET https://h.test${path}`).allow, false, path);
    assert.equal(ask(d, 'GET https://h.test/administrator').allow, true);
  });
});

describe('query conditions', () => {
  const p = policy(`  - methods: [read]\n    hosts: [q.test]\n    query: { service: git-upload-pack, token: { absent: true }, page: { matches: "^[0-9]{1,3}$" } }`);
  it('all conditions must hold, for every value of a repeated key', () => {
    assert.equal(ask(p, 'GET https://q.test/?service=git-upload-pack&page=2').allow, true);
    assert.equal(ask(p, 'GET https://q.test/?service=git-upload-pack&page=2&token=x').allow, false);
    assert.equal(ask(p, 'GET https://q.test/?service=git-upload-pack&page=2&page=x').allow, false);
    assert.equal(ask(p, 'GET https://q.test/?service=git-upload-pack&service=git-receive-pack&page=1').allow, false);
    assert.equal(ask(p, 'GET https://q.test/?page=1').allow, false);
    assert.equal(ask(p, 'GET https://q.test/?service=git%2Dupload%2Dpack&page=1').allow, true, 'keys and values are percent-decoded');
  });
});

describe('HTTPS-only writes', () => {
  it('refuses writes over plain HTTP unless the rule lists http explicitly', () => {
    const p = policy(`  - { methods: any, hosts: [w.test] }\n  - { methods: [write], hosts: [plain.test], schemes: [http, https] }`);
    assert.equal(ask(p, 'GET http://w.test/').allow, true);
    const d = ask(p, 'POST http://w.test/');
    assert.equal(d.allow, false);
    assert.equal(d.code, 'https_required');
    assert.equal(ask(p, 'POST https://w.test/').allow, true);
    assert.equal(ask(p, 'POST http://plain.test/').allow, true);
  });
});

describe('precedence', () => {
  const p = policy(
    `  - { name: first, methods: [read], hosts: ["*.e.test"] }\n  - { name: second, methods: [read], hosts: [a.e.test] }\n  - { name: block, action: deny, agents: [b], methods: any, hosts: [a.e.test], description: "agent b may not read a.e.test" }`,
  );
  it('the first matching allow in file order is reported', () => {
    assert.equal(ask(p, 'GET https://a.e.test/').rule?.name, 'first');
  });
  it('a deny wins over any allow, wherever it is written, and its description is the reason', () => {
    const d = ask(p, 'GET https://a.e.test/', 'b');
    assert.equal(d.allow, false);
    assert.equal(d.rule?.name, 'block');
    assert.match(d.reason, /agent b may not read a\.e\.test/);
    assert.match(d.reason, /rules\/t\.yaml:7/);
    assert.equal(ask(p, 'GET https://a.e.test/', 'a').allow, true);
    assert.equal(decideTunnel(p, 'b', 'a.e.test', 443).allow, false, 'a whole-host deny refuses the tunnel too');
    assert.equal(decideTunnel(p, 'a', 'a.e.test', 443).allow, true);
  });
  it('per-agent rules apply only to their agents', () => {
    const q = policy(`  - { agents: [a], methods: [read], hosts: [x.test] }`);
    assert.equal(ask(q, 'GET https://x.test/', 'a').allow, true);
    assert.equal(ask(q, 'GET https://x.test/', 'b').allow, false);
    assert.equal(decideTunnel(q, 'b', 'x.test', 443).allow, false);
  });
});

describe('until', () => {
  it('an expired entry stops matching at that instant, without a reload', () => {
    const p = policy(`  - { name: temp, methods: [read], hosts: [t.test], until: "2030-01-01T00:00:00Z" }`);
    const at = Date.parse('2030-01-01T00:00:00Z');
    assert.equal(ask(p, 'GET https://t.test/', 'a', {}, at - 1).allow, true);
    const d = ask(p, 'GET https://t.test/', 'a', {}, at);
    assert.equal(d.allow, false);
    assert.match(d.reason, /expired at 2030-01-01T00:00:00.000Z/);
    assert.equal(decideTunnel(p, 'a', 't.test', 443, at).allow, false);
  });
});

describe('shared policies and includes', () => {
  it('an included policy applies to the agents of the include only, and reports its origin', () => {
    const p = policy(`  - { include: ro, agents: [b] }`, `policies:\n  - name: ro\n    rules:\n      - { name: ro-read, methods: [read], hosts: [g.test] }`);
    const d = ask(p, 'GET https://g.test/', 'b');
    assert.equal(d.allow, true);
    assert.match(d.reason, /policy ro, included at rules\/t\.yaml:5/);
    assert.equal(ask(p, 'GET https://g.test/', 'a').allow, false);
  });
});

describe('explain', () => {
  it('gives the same decision as decide and a line per rule for the agent and host', () => {
    const p = policy(`  - { name: r, methods: [read], hosts: ["*"] }\n  - { name: w, methods: [write], hosts: [api.test] }`);
    const req = parseRequestLine('a', 'DELETE http://api.test/x');
    const e = explain(p, req);
    assert.deepEqual({ ...e.decision }, { ...decide(p, req) });
    assert.equal(e.trace.length, 2);
    assert.match(e.trace[1]?.verdict ?? '', /only over HTTPS/);
  });
});
