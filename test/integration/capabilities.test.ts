/**
 * Capabilities through the real proxy (docs/rules.md, capabilities): a real MCP server (the
 * official TypeScript SDK's Server over streamable HTTP, HTTPS with the test CA) and the SDK's
 * real client through Turret; JSON body schemas with curl; a session-label (taint) sequence.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { curl } from '../helpers/curl.js';
import { agentToken, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { FIXTURES, startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const TOOLS = ['send_message', 'list_rooms', 'delete_room'];

function rules(): RuleFile {
  return {
    agents: ['bot'],
    rules: [
      {
        name: 'matrix-mcp',
        methods: ['read'],
        hosts: ['mcp.turret.test:*'],
        catalog: ['mcp'],
        mcp: {
          tools: ['send_message', 'list_rooms'],
          arguments: {
            send_message: {
              type: 'object',
              required: ['room_id', 'body'],
              additionalProperties: false,
              properties: { room_id: { type: 'string', pattern: '^![a-z]+$' }, body: { type: 'string', maxLength: 4096 } },
            },
          },
        },
        unsafe_addresses: LOOPBACK,
      },
      {
        name: 'send',
        methods: ['POST'],
        hosts: ['api.turret.test:*'],
        paths: ['/rooms/*/send'],
        body_schema: {
          type: 'object',
          required: ['msgtype', 'body'],
          additionalProperties: false,
          properties: { msgtype: { const: 'm.text' }, body: { type: 'string', maxLength: 4096 } },
        },
        unsafe_addresses: LOOPBACK,
      },
      { name: 'customer-db', methods: ['read'], hosts: ['db.turret.test:*'], taints: ['read-sensitive'], unsafe_addresses: LOOPBACK },
      { name: 'paste', methods: ['read', 'POST'], hosts: ['paste.turret.test:*'], unless_tainted: ['read-sensitive'], unsafe_addresses: LOOPBACK },
    ],
    settings: { taint_ttl: '1s' },
    local: ['mcp.turret.test', 'api.turret.test', 'db.turret.test', 'paste.turret.test'],
  };
}

/** A stateless MCP server: a new SDK Server and transport per HTTP request. */
async function startMcpServer(calls: string[]): Promise<{ port: number; close: () => Promise<void> }> {
  const server = https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, (req, res) => {
    const mcp = new Server({ name: 'test-matrix', version: '1.0.0' }, { capabilities: { tools: {} } });
    mcp.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS.map((name) => ({ name, inputSchema: { type: 'object' as const } })) }));
    mcp.setRequestHandler(CallToolRequestSchema, async (r) => {
      calls.push(r.params.name);
      return { content: [{ type: 'text' as const, text: `did ${r.params.name}` }] };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => void transport.close().then(() => mcp.close()));
    void mcp.connect(transport).then(() => transport.handleRequest(req, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('capabilities: MCP tools, body schemas, session labels', () => {
  let t: TurretProc;
  let mcp: { port: number; close: () => Promise<void> };
  let up: Upstream;
  let token: string;
  let caFile: string;
  const calls: string[] = [];
  const outputs: string[] = [];

  before(async () => {
    mcp = await startMcpServer(calls);
    up = await startUpstream();
    t = await startTurret({ rules: { 'caps.yaml': rules() } });
    token = await agentToken(t, 'bot');
    caFile = path.join(t.caDir, 'ca.crt');
  });

  after(async () => {
    await t?.stop();
    await mcp?.close();
    await up?.close();
  });

  const client = async (): Promise<Client> => {
    const dispatcher = new ProxyAgent({
      uri: `http://127.0.0.1:${t.port}`,
      token: `Basic ${Buffer.from(`bot:${token}`).toString('base64')}`,
      requestTls: { ca: readFileSync(caFile) },
    });
    const transport = new StreamableHTTPClientTransport(new URL(`https://mcp.turret.test:${mcp.port}/mcp`), {
      fetch: (url, init) => undiciFetch(url, { ...(init as object), dispatcher }) as unknown as Promise<Response>,
    });
    const c = new Client({ name: 'agent', version: '1.0.0' });
    await c.connect(transport);
    return c;
  };
  const run = async (args: string[]) => {
    const r = await curl(['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `bot:${token}`, '--cacert', caFile, ...args]);
    outputs.push(r.raw);
    return r;
  };

  it('a real MCP client lists only the tools it may call, calls an allowed one, and is refused a forbidden one', async () => {
    const c = await client();
    try {
      const listed = await c.listTools();
      assert.deepEqual(listed.tools.map((x) => x.name).sort(), ['list_rooms', 'send_message'], 'tools/list is filtered to the rule’s tools');
      const ok = await c.callTool({ name: 'send_message', arguments: { room_id: '!abc', body: 'hello' } });
      assert.deepEqual(ok.content, [{ type: 'text', text: 'did send_message' }]);
      // The SDK surfaces Turret's denial text: what was refused and why.
      await assert.rejects(c.callTool({ name: 'delete_room', arguments: {} }), /Turret refused POST[\s\S]*MCP tool "delete_room" is not in its tools[\s\S]*Code: policy_denied/);
      await assert.rejects(
        c.callTool({ name: 'send_message', arguments: { room_id: 'not-a-room', body: 'x' } }),
        /MCP tool "send_message" arguments do not match the schema \(rules\/caps\.yaml:\d+\): \/room_id must match pattern/,
      );
    } finally {
      await c.close();
    }
    assert.deepEqual(calls, ['send_message'], 'only the allowed call reached the server');
    const rec = await waitForAudit(t, (r) => r.event === 'request' && typeof r.reason === 'string' && r.reason.includes('delete_room'));
    assert.equal(rec?.code, 'policy_denied');
  });

  it('a batch with one forbidden call is refused whole, and nothing of it reaches the server', async () => {
    const before = calls.length;
    const batch = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'list_rooms', arguments: {} } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'delete_room', arguments: {} } },
    ]);
    const r = await run([
      '-H',
      'content-type: application/json',
      '-H',
      'accept: application/json, text/event-stream',
      '--data-binary',
      batch,
      `https://mcp.turret.test:${mcp.port}/mcp`,
    ]);
    assert.equal(r.status, 403, r.raw);
    assert.equal(r.headers['x-turret-error'], 'policy_denied');
    assert.match(r.body, /delete_room.*whole batch/s);
    assert.equal(calls.length, before);
  });

  it('a body must match the rule’s JSON Schema: valid passes unchanged, invalid, non-JSON, compressed and oversized are refused', async () => {
    const url = `https://api.turret.test:${up.port}/rooms/r1/send`;
    const good = JSON.stringify({ msgtype: 'm.text', body: 'hi' });
    let r = await run(['-H', 'content-type: application/json', '--data-binary', good, url]);
    assert.equal(r.status, 200, r.raw);
    assert.equal(up.received.at(-1)?.body, good, 'forwarded unchanged');
    const n = up.received.length;
    const cases: Array<[string, string[], RegExp]> = [
      ['extra property', ['--data-binary', JSON.stringify({ msgtype: 'm.text', body: 'hi', admin: true })], /must NOT have additional properties/],
      [
        'too long',
        ['--data-binary', JSON.stringify({ msgtype: 'm.text', body: 'x'.repeat(4097) })],
        /\/body must NOT have more than 4096 characters \(schema #\/properties\/body\/maxLength\)/,
      ],
      ['wrong const', ['--data-binary', JSON.stringify({ msgtype: 'm.image', body: 'x' })], /\/msgtype must be equal to constant/],
      ['not json', ['--data-binary', '{"msgtype": m.text'], /not JSON/],
      ['oversized', ['--data-binary', JSON.stringify({ msgtype: 'm.text', body: 'y'.repeat(70_000) })], /could not be inspected/],
    ];
    for (const [name, args, reason] of cases) {
      r = await run(['-H', 'content-type: application/json', ...args, url]);
      assert.equal(r.status, 403, `${name}: ${r.raw.slice(0, 300)}`);
      assert.equal(r.headers['x-turret-error'], 'body_schema_invalid', name);
      assert.match(r.body, reason, name);
    }
    const gz = path.join(t.dir, 'body.gz');
    writeFileSync(gz, zlib.gzipSync(good));
    r = await run(['-H', 'content-type: application/json', '-H', 'content-encoding: gzip', '--data-binary', `@${gz}`, url]);
    assert.equal(r.status, 403, r.raw);
    assert.equal(r.headers['x-turret-error'], 'body_schema_invalid');
    assert.equal(up.received.length, n, 'no refused body reached the upstream');
  });

  it('after a read labels the session, a write to the paste site is refused, and allowed again when the label expires', async () => {
    const paste = `https://paste.turret.test:${up.port}/new`;
    let r = await run(['--data-binary', 'notes', paste]);
    assert.equal(r.status, 200, 'allowed before the session is labelled');
    r = await run([`https://db.turret.test:${up.port}/customers/1`]);
    assert.equal(r.status, 200);
    const labelled = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/customers/1');
    r = await run(['--data-binary', 'customer 1: …', paste]);
    assert.equal(r.status, 403, r.raw);
    assert.equal(r.headers['x-turret-error'], 'session_tainted');
    assert.ok(r.body.includes(`added by request ${String(labelled?.request_id)}`), `the denial names the request that added the label: ${r.body}`);
    // The label lasts taint_ttl (1 s): bounded retries until it has expired.
    let status = 0;
    for (let i = 0; i < 60 && status !== 200; i++) {
      await new Promise((res) => setTimeout(res, 50));
      status = (await run(['--data-binary', 'later', paste])).status;
    }
    assert.equal(status, 200, 'allowed again once the label expired');
  });
});
