/**
 * Capabilities: rules that look inside a request body, so a rule can say "POST /rooms/{id}/send
 * with a body of this shape" or "this MCP tool, with these arguments" instead of "any POST".
 *
 * - `body_schema`: the JSON body must validate against a JSON Schema (compiled at load, ajv).
 * - `catalog: [mcp]` / `catalog: [jsonrpc]`: a JSON-RPC 2.0 message (or batch) is decided element by
 *   element: MCP reads (initialize, tools/list, ping, notifications …) count as reads,
 *   `tools/call` is decided by the tool name (`mcp.tools`) and, optionally, an argument schema
 *   per tool; for plain JSON-RPC, `jsonrpc.methods` lists the method names allowed. One refused
 *   element refuses the whole batch.
 *
 * Pure: the body arrives already peeked (bounded, catalog.ts MAX_PEEK_BYTES) as a string; null
 * means it could not be read (too large, compressed, cut short). Nothing here does I/O.
 */
import type { Rule } from './types.js';

/** A compiled JSON Schema: returns null when the value is valid, else the first problem. */
export type SchemaCheck = (value: unknown) => string | null;

export interface BodySchema {
  /** Where the schema came from, for messages: "rules/a.yaml:12" or "schemas/send.json". */
  source: string;
  check: SchemaCheck;
}

export interface McpSpec {
  /** Tool names `tools/call` may name; null = no tool calls by name (they are writes). */
  tools: ReadonlySet<string> | null;
  /** Optional argument schemas per tool name. */
  arguments: ReadonlyMap<string, BodySchema>;
}

export interface JsonRpcSpec {
  methods: ReadonlySet<string>;
}

/** MCP methods that only read (MCP 2025-06-18, client → server). Notifications count as reads. */
export const MCP_READ_METHODS: ReadonlySet<string> = new Set([
  'initialize',
  'ping',
  'tools/list',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'prompts/list',
  'prompts/get',
  'completion/complete',
]);

export interface RpcElement {
  /** Method name, or null for a JSON-RPC response (the client answering a server request). */
  method: string | null;
  id: unknown;
  params: unknown;
}

/** The JSON-RPC elements of a body, or null when it is not a JSON-RPC 2.0 message or batch. */
export function rpcElements(body: string | null | undefined): RpcElement[] | null {
  if (body === null || body === undefined) return null;
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return null;
  }
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) return null;
  const out: RpcElement[] = [];
  for (const it of items) {
    if (typeof it !== 'object' || it === null || (it as { jsonrpc?: unknown }).jsonrpc !== '2.0') return null;
    const o = it as { method?: unknown; id?: unknown; params?: unknown; result?: unknown; error?: unknown };
    if (typeof o.method === 'string') out.push({ method: o.method, id: o.id, params: o.params });
    else if ('result' in o || 'error' in o) out.push({ method: null, id: o.id, params: undefined });
    else return null;
  }
  return out;
}

/** A parsed JSON body for a schema, or a problem ("not JSON", "could not be read"). */
export function jsonBody(body: string | null | undefined): { ok: true; value: unknown } | { ok: false; problem: string } {
  if (body === null || body === undefined) return { ok: false, problem: 'the body could not be inspected (none, larger than 64 KiB, compressed or cut short)' };
  try {
    return { ok: true, value: JSON.parse(body) };
  } catch {
    return { ok: false, problem: 'the body is not JSON' };
  }
}

export type ElementVerdict = { ok: true; what: string } | { ok: false; why: string };

function toolName(params: unknown): string | null {
  const n = (params as { name?: unknown } | null | undefined)?.name;
  return typeof n === 'string' ? n : null;
}

/**
 * One element under one rule. `canRead`/`canWrite`: the rule's method list covers reads / writes
 * (a POST counts as whichever the element is). For an allow rule every element must pass; for a
 * deny rule `ok` means "this element is one the rule denies".
 */
export function judgeElement(rule: Rule, e: RpcElement, canRead: boolean, canWrite: boolean): ElementVerdict {
  const method = e.method;
  if (rule.jsonrpc && rule.catalog.has('jsonrpc')) {
    if (method === null) return { ok: true, what: 'JSON-RPC response' };
    if (rule.jsonrpc.methods.has(method)) return { ok: true, what: `JSON-RPC ${method}` };
    return { ok: false, why: `JSON-RPC method "${method.slice(0, 60)}" is not in its methods (${[...rule.jsonrpc.methods].join(', ')})` };
  }
  if (method === null || method.startsWith('notifications/') || MCP_READ_METHODS.has(method)) {
    const what = method === null ? 'MCP response' : `MCP ${method}`;
    return canRead ? { ok: true, what } : { ok: false, why: `${what} is a read, which it does not cover` };
  }
  if (method === 'tools/call' && rule.mcp?.tools) {
    const name = toolName(e.params);
    if (name === null) return { ok: false, why: 'tools/call names no tool' };
    if (!rule.mcp.tools.has(name)) return { ok: false, why: `MCP tool "${name.slice(0, 60)}" is not in its tools (${[...rule.mcp.tools].join(', ')})` };
    const schema = rule.mcp.arguments.get(name);
    if (schema) {
      const problem = schema.check((e.params as { arguments?: unknown }).arguments ?? {});
      if (problem) return { ok: false, why: `MCP tool "${name}" arguments do not match the schema (${schema.source}): ${problem}` };
    }
    return { ok: true, what: `MCP tools/call ${name}` };
  }
  const what = method === 'tools/call' ? `MCP tools/call ${toolName(e.params) ?? '(unnamed)'}` : `MCP ${method.slice(0, 60)}`;
  return canWrite ? { ok: true, what } : { ok: false, why: `${what} is a write, which it does not cover` };
}

/** Deny rules: does the rule name this element (a listed tool or JSON-RPC method)? */
export function deniesElement(rule: Rule, e: RpcElement): string | null {
  if (rule.jsonrpc && rule.catalog.has('jsonrpc') && e.method !== null && rule.jsonrpc.methods.has(e.method)) return `JSON-RPC ${e.method}`;
  if (rule.mcp?.tools && e.method === 'tools/call') {
    const name = toolName(e.params);
    if (name !== null && rule.mcp.tools.has(name)) return `MCP tools/call ${name}`;
  }
  return null;
}

/**
 * The ids of `tools/list` requests in a body the rule allowed, so the answer can be filtered to
 * the tools the agent may call (proxy/stages/mcp-filter.ts). null: nothing to filter.
 */
export function toolListFilter(rule: Rule | null, body: string | null | undefined): { ids: unknown[]; tools: ReadonlySet<string> } | null {
  if (!rule?.mcp?.tools || !rule.catalog.has('mcp')) return null;
  const els = rpcElements(body);
  const ids = (els ?? []).filter((e) => e.method === 'tools/list').map((e) => e.id);
  return ids.length > 0 ? { ids, tools: rule.mcp.tools } : null;
}
