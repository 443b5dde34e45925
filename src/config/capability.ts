/**
 * Rule keys that make a rule a capability (docs/rules.md, capabilities): `body_schema`, `mcp`,
 * `jsonrpc`, `taints`, `unless_tainted`. JSON Schemas are compiled here, at load, with ajv
 * (draft-07, strict mode, formats from ajv-formats): a schema ajv rejects is a load problem at
 * the schema's own file:line:col, never a request-time surprise.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { BodySchema, JsonRpcSpec, McpSpec } from '../policy/capability.js';
import type { CatalogEntry, Rule } from '../policy/types.js';
import { readName } from './common.js';
import { parseYaml, type Cursor } from './yaml.js';

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (a: Ajv) => Ajv;

let ajv: Ajv | null = null;
function validator(): Ajv {
  if (!ajv) {
    ajv = new Ajv({ strict: true, allErrors: false, validateFormats: true });
    addFormats(ajv);
  }
  return ajv;
}

/** The largest schema file read (a schema is configuration, not data). */
const MAX_SCHEMA_FILE = 256 * 1024;

function describeError(e: ErrorObject): string {
  return `${e.instancePath || '(the body)'} ${e.message ?? 'is invalid'} (schema ${e.schemaPath})`;
}

/** Follow a JSON pointer ("/properties/a/type") through YAML cursors, for the position of a problem. */
function cursorAt(c: Cursor, pointer: string): Cursor {
  let cur = c;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const next = /^\d+$/.test(key) ? cur.list()?.[Number(key)] : cur.get(key);
    if (!next) break;
    cur = next;
  }
  return cur;
}

/** A JSON Schema written inline (YAML) or as `{ file: "schemas/x.json" }` next to the rules. */
export function readSchema(c: Cursor): BodySchema | undefined {
  let at = c;
  let source = c.where();
  const keys = c.keys();
  if (keys.length === 1 && keys[0] === 'file') {
    const rel = c.get('file')?.str();
    if (rel === undefined) return undefined;
    const file = path.resolve(path.dirname(c.doc.file), rel);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return c.get('file')!.fail(`schema file "${rel.slice(0, 80)}" cannot be read (a relative path is resolved from this rule file's directory)`);
    }
    if (text.length > MAX_SCHEMA_FILE) return c.get('file')!.fail(`schema file "${rel.slice(0, 80)}" is larger than ${MAX_SCHEMA_FILE} bytes`);
    const shown = path.relative(process.cwd(), file) || file;
    const parsed = parseYaml(shown.startsWith('..') ? file : shown, text);
    // Problems inside the schema file are reported at its own positions, through this rule file.
    c.doc.problems.push(...parsed.doc.problems);
    if (!parsed.root) return undefined;
    at = parsed.root;
    source = shown;
  }
  const schema = at.node.toJSON() as unknown;
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return at.fail('a JSON Schema is a mapping (for example type: object, properties: …)');
  const v = validator();
  if (!v.validateSchema(schema)) {
    // The meta-schema's first complaint is the precise one (later ones restate it via anyOf).
    const e = v.errors?.[0];
    const spot = cursorAt(at, e?.instancePath ?? '');
    c.doc.problems.push({
      file: at.doc.file,
      ...at.doc.pos(spot.node),
      path: spot.path,
      message: `not a valid JSON Schema: ${e?.instancePath || '/'} ${e?.message ?? 'is invalid'}`,
    });
    return undefined;
  }
  let check: ReturnType<Ajv['compile']>;
  try {
    check = v.compile(schema);
  } catch (e) {
    return at.fail(`JSON Schema does not compile: ${(e as Error).message.slice(0, 200)}`);
  }
  return {
    source,
    check: (value) => (check(value) ? null : describeError(check.errors?.[0] ?? ({ instancePath: '', schemaPath: '#', message: 'is invalid' } as ErrorObject))),
  };
}

export interface Capability {
  bodySchema: BodySchema | null;
  mcp: McpSpec | null;
  jsonrpc: JsonRpcSpec | null;
  taints: string[];
  unlessTainted: string[];
}

/** Reads the capability keys of one rule (already validated as known keys by readRule). */
export function readCapability(m: Map<string, Cursor>, action: Rule['action'], catalog: ReadonlySet<CatalogEntry>): Capability {
  const out: Capability = { bodySchema: null, mcp: null, jsonrpc: null, taints: [], unlessTainted: [] };
  const bs = m.get('body_schema');
  if (bs) {
    if (action === 'deny') bs.fail('a body schema says what an allow rule lets through; it belongs on an allow rule');
    else out.bodySchema = readSchema(bs) ?? null;
  }
  const mc = m.get('mcp');
  if (mc) {
    if (!catalog.has('mcp')) mc.fail('add "mcp" to this rule\'s catalog: list to use these settings');
    const mm = mc.map(['tools', 'arguments']);
    const tools = mm?.get('tools')?.strings();
    const args = new Map<string, BodySchema>();
    const ac = mm?.get('arguments');
    for (const name of ac?.keys() ?? []) {
      const sc = ac?.get(name);
      if (!sc) continue;
      if (!tools?.includes(name)) sc.fail(`tool "${name.slice(0, 60)}" has an argument schema but is not in tools:`);
      const s = readSchema(sc);
      if (s) args.set(name, s);
    }
    if (ac && ac.keys().length === 0) ac.map([]);
    out.mcp = { tools: tools ? new Set(tools) : null, arguments: args };
  }
  const jc = m.get('jsonrpc');
  if (jc) {
    if (!catalog.has('jsonrpc')) jc.fail('add "jsonrpc" to this rule\'s catalog: list to use these settings');
    const methods = jc.map(['methods'], ['methods'])?.get('methods')?.strings() ?? [];
    out.jsonrpc = { methods: new Set(methods) };
  }
  if (catalog.has('mcp') && catalog.has('jsonrpc')) (m.get('catalog') ?? mc ?? jc)?.fail('choose one of mcp and jsonrpc for a rule (MCP is JSON-RPC with its own method meanings)');
  const tc = m.get('taints');
  if (tc) {
    if (action === 'deny') tc.fail('a deny rule allows nothing, so it cannot label a session; put taints on an allow rule');
    else out.taints = labels(tc);
  }
  const uc = m.get('unless_tainted');
  if (uc) out.unlessTainted = labels(uc);
  return out;
}

function labels(c: Cursor): string[] {
  const out: string[] = [];
  for (const item of c.listOrOne() ?? []) {
    const n = readName(item, 'label');
    if (n) out.push(n);
  }
  return out;
}
