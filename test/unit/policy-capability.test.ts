/**
 * Capabilities (policy/capability.ts, capability-decide.ts, taint.ts, proxy/stages/mcp-filter.ts):
 * JSON-RPC/MCP element decisions, body schemas, session labels and the tools/list filter.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { compilePolicy, loadPolicy } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/yaml.js';
import { rpcElements } from '../../src/policy/capability.js';
import { decide } from '../../src/policy/decide.js';
import { TaintStore } from '../../src/policy/taint.js';
import type { RequestFacts } from '../../src/policy/types.js';
import { filterJsonText, toolListFilterStream } from '../../src/proxy/stages/mcp-filter.js';

const RULES = `
agents: [{ name: bot }]
rules:
  - name: mcp
    methods: [read]
    hosts: [mcp.example.org]
    catalog: [mcp]
    mcp:
      tools: [send, list]
      arguments:
        send: { type: object, required: [to], properties: { to: { type: string, maxLength: 5 } } }
  - name: mcp-writes
    methods: [read, write]
    hosts: [open.example.org]
    catalog: [mcp]
  - name: no-delete
    action: deny
    methods: [POST]
    hosts: [open.example.org]
    catalog: [mcp]
    mcp: { tools: [delete_everything] }
  - name: rpc
    methods: [POST]
    hosts: [rpc.example.org]
    catalog: [jsonrpc]
    jsonrpc: { methods: [eth_call, eth_blockNumber] }
  - name: body
    methods: [POST]
    hosts: [api.example.org]
    body_schema: { type: object, required: [a], properties: { a: { type: integer } } }
  - name: reads-then
    methods: [read]
    hosts: [crm.example.org]
    taints: [sensitive]
  - name: paste
    methods: [any]
    hosts: [paste.example.org]
    unless_tainted: [sensitive]
`;
const policy = compilePolicy([{ file: 'caps.yaml', text: RULES }]);

function post(host: string, body: unknown, extra: Partial<RequestFacts> = {}): RequestFacts {
  return {
    agent: 'bot',
    method: 'POST',
    scheme: 'https',
    host,
    port: 443,
    path: '/mcp',
    contentType: 'application/json',
    body: body === null || typeof body === 'string' ? body : JSON.stringify(body),
    ...extra,
  };
}
const call = (id: number, name: string, args: unknown = {}) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

describe('JSON-RPC elements', () => {
  it('reads messages, batches and responses; anything else is not JSON-RPC', () => {
    assert.equal(rpcElements('{"jsonrpc":"2.0","id":1,"method":"ping"}')?.[0]?.method, 'ping');
    assert.equal(rpcElements('[{"jsonrpc":"2.0","id":1,"result":{}}]')?.[0]?.method, null);
    for (const bad of [null, '', 'x', '[]', '{"id":1,"method":"ping"}', '{"jsonrpc":"1.0","method":"a"}', '[{"jsonrpc":"2.0","method":"a"}, 3]', '{"jsonrpc":"2.0","method":7}']) {
      assert.equal(rpcElements(bad), null, String(bad));
    }
  });
});

describe('MCP and JSON-RPC decisions', () => {
  it('MCP reads and notifications pass a read rule; tool calls by name; unnamed tools are writes', () => {
    for (const m of ['initialize', 'tools/list', 'ping', 'resources/read', 'notifications/initialized']) {
      assert.equal(decide(policy, post('mcp.example.org', { jsonrpc: '2.0', id: 1, method: m })).allow, true, m);
    }
    assert.equal(decide(policy, post('mcp.example.org', call(1, 'send', { to: 'bob' }))).allow, true);
    const d = decide(policy, post('mcp.example.org', call(1, 'drop_tables')));
    assert.equal(d.allow, false);
    assert.match(d.reason, /MCP tool "drop_tables" is not in its tools \(send, list\)/);
    assert.match(
      decide(policy, post('mcp.example.org', call(1, 'send', { to: 'someone-long' }))).reason,
      /arguments do not match the schema .*\/to must NOT have more than 5 characters/,
    );
    assert.match(decide(policy, post('mcp.example.org', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: {} })).reason, /names no tool/);
    assert.match(decide(policy, post('mcp.example.org', { jsonrpc: '2.0', id: 1, method: 'sampling/whatever' })).reason, /is a write/);
  });

  it('a batch is decided element by element: one refused element refuses all', () => {
    const d = decide(policy, post('mcp.example.org', [call(1, 'list'), call(2, 'nope')]));
    assert.equal(d.allow, false);
    assert.match(d.reason, /whole batch \(batch of 2\)/);
    assert.equal(decide(policy, post('mcp.example.org', [call(1, 'list'), { jsonrpc: '2.0', id: 2, method: 'tools/list' }])).allow, true);
  });

  it('a deny rule naming a tool wins over an allow that covers writes', () => {
    assert.equal(decide(policy, post('open.example.org', call(1, 'anything'))).allow, true);
    const d = decide(policy, post('open.example.org', [call(1, 'anything'), call(2, 'delete_everything')]));
    assert.equal(d.allow, false);
    assert.equal(d.rule?.name, 'no-delete');
  });

  it('a body that is not JSON-RPC falls back to the method: a POST under a read rule is refused', () => {
    assert.equal(decide(policy, post('mcp.example.org', 'not json')).allow, false);
    assert.equal(decide(policy, post('mcp.example.org', null)).allow, false);
    assert.equal(decide(policy, { ...post('mcp.example.org', null), method: 'GET' }).allow, true, 'the SSE stream (GET) is a read');
  });

  it('JSON-RPC method allow lists', () => {
    assert.equal(decide(policy, post('rpc.example.org', { jsonrpc: '2.0', id: 1, method: 'eth_call', params: [] })).allow, true);
    assert.match(decide(policy, post('rpc.example.org', { jsonrpc: '2.0', id: 1, method: 'eth_sendTransaction' })).reason, /"eth_sendTransaction" is not in its methods/);
  });
});

describe('body schemas', () => {
  it('valid passes; invalid, non-JSON and unreadable bodies are refused with body_schema_invalid', () => {
    assert.equal(decide(policy, post('api.example.org', { a: 1 })).allow, true);
    for (const [body, why] of [
      [{ a: 'x' }, /\/a must be integer \(schema #\/properties\/a\/type\)/],
      [{}, /must have required property 'a'/],
      ['{', /not JSON/],
      [null, /could not be inspected/],
    ] as const) {
      const d = decide(policy, post('api.example.org', body));
      assert.equal(d.allow, false);
      assert.equal(d.code, 'body_schema_invalid');
      assert.match(d.reason, why);
    }
  });

  it('a schema file next to the rules is compiled at load; its problems point into that file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'turret-schema-'));
    mkdirSync(path.join(dir, 'schemas'));
    writeFileSync(path.join(dir, 'schemas', 'ok.json'), '{"type": "object", "properties": {"n": {"type": "integer"}}}');
    writeFileSync(path.join(dir, 'schemas', 'bad.json'), '{\n  "type": "object",\n  "properties": {"n": {"type": "integr"}}\n}');
    const rule = (f: string) => `agents: [{ name: bot }]\nrules:\n  - { methods: [POST], hosts: [a.example], body_schema: { file: schemas/${f} } }\n`;
    writeFileSync(path.join(dir, 'a.yaml'), rule('ok.json'));
    const p = await loadPolicy(dir);
    assert.equal(decide(p, post('a.example', { n: 'x' })).code, 'body_schema_invalid');
    writeFileSync(path.join(dir, 'a.yaml'), rule('bad.json'));
    const e = await loadPolicy(dir).catch((x: unknown) => x);
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /schemas\/bad\.json:3:32: properties\.n\.type: not a valid JSON Schema/);
  });
});

describe('session labels', () => {
  it('a label refuses the rule that excludes it, names the request that added it, and expires', () => {
    const store = new TaintStore();
    const facts = (now: number): RequestFacts => ({ ...post('paste.example.org', 'x'), taints: store.get('agent:bot', now) });
    assert.equal(decide(policy, facts(0)).allow, true);
    store.add('agent:bot', ['sensitive'], { request: 'req-1', rule: 'caps.yaml:50' }, 1_000, 0);
    const d = decide(policy, facts(500));
    assert.equal(d.code, 'session_tainted');
    assert.match(d.reason, /labelled "sensitive" \(added by request req-1, rule caps\.yaml:50, until 1970-01-01T00:00:01\.000Z\)/);
    assert.equal(decide(policy, facts(1_000)).allow, true, 'expired');
    assert.equal(store.get('agent:bot', 1_000), undefined, 'and forgotten');
  });
});

describe('tools/list filter', () => {
  const f = { ids: [7], tools: new Set(['send']) };
  const answer = { jsonrpc: '2.0', id: 7, result: { tools: [{ name: 'send' }, { name: 'delete' }] } };
  it('filters JSON answers by request id only', () => {
    assert.deepEqual(JSON.parse(filterJsonText(JSON.stringify(answer), f)).result.tools, [{ name: 'send' }]);
    assert.deepEqual(JSON.parse(filterJsonText(JSON.stringify({ ...answer, id: 8 }), f)).result.tools.length, 2);
    assert.equal(filterJsonText('not json', f), 'not json');
  });
  it('filters server-sent events split anywhere', async () => {
    const sse = `event: message\ndata: ${JSON.stringify(answer)}\n\n`;
    const parts = [sse.slice(0, 17), sse.slice(17, 60), sse.slice(60)].map((s) => Buffer.from(s));
    const out = await text(Readable.from(parts).pipe(toolListFilterStream('text/event-stream', f)));
    assert.ok(out.startsWith('event: message\ndata: '), out);
    assert.deepEqual(JSON.parse(out.split('data: ')[1] ?? '').result.tools, [{ name: 'send' }]);
    assert.ok(!out.includes('delete'));
  });
});
