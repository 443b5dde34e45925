/**
 * Load every `*.yaml` / `*.yml` file of a rules directory (sorted by name) into one Policy.
 * Lifecycle (caddy's, in one place): read → parse → validate (all problems, with file:line:col)
 * → compile → resolve includes and cross-check across files → run `examples:` → return. Nothing
 * is half-applied: any problem throws a ConfigError and the caller keeps whatever policy it had
 * (fail closed on first load, old rules keep serving on reload).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runExamples } from '../policy/examples.js';
import { assumedTaints, parseRequestLine } from '../policy/request.js';
import type { AgentDef, AgentLimit, Example, Policy, Rule, SecretDef, Settings } from '../policy/types.js';
import { readName, readRateLimit, readSettings } from './common.js';
import { readRule } from './rules.js';
import { readAgent, readSecret } from './secrets.js';
import { readScrub } from './scrub.js';
import { readSharedState } from './shared-state.js';
import { ConfigError, parseYaml, type Cursor, type Doc, type Problem } from './yaml.js';

const TOP_KEYS = ['agents', 'secrets', 'rules', 'policies', 'limits', 'examples', 'settings', 'scrub'] as const;
const MAX_FILE_BYTES = 1 << 20;

export async function listRuleFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    throw new ConfigError([{ file: dir, line: 1, col: 1, path: '', message: 'rules directory cannot be read; create it or pass --rules DIR' }]);
  }
  const files = names.filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.')).sort();
  if (files.length === 0) {
    throw new ConfigError([{ file: dir, line: 1, col: 1, path: '', message: 'no rule files (*.yaml) found; without rules nothing may pass' }]);
  }
  // Rule ids are file:line; show paths relative to the working directory when they are inside it.
  return files.map((n) => {
    const full = path.join(dir, n);
    const rel = path.relative(process.cwd(), full);
    return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : full;
  });
}

export async function loadPolicy(dir: string, now: number = Date.now()): Promise<Policy> {
  const files = await listRuleFiles(dir);
  const texts = await Promise.all(
    files.map(async (f) => {
      const st = await fs.stat(f);
      if (st.size > MAX_FILE_BYTES) throw new ConfigError([{ file: f, line: 1, col: 1, path: '', message: `file is larger than ${MAX_FILE_BYTES} bytes` }]);
      return fs.readFile(f, 'utf8');
    }),
  );
  return compilePolicy(
    files.map((f, i) => ({ file: f, text: texts[i] ?? '' })),
    now,
  );
}

interface Include {
  cursor: Cursor;
  policy: string;
  agents: Rule['agents'];
}
interface Shared {
  name: string;
  where: string;
  rules: Rule[];
}

/** Compile rule-file texts (already read) into a Policy; exported for golden tests. */
export function compilePolicy(sources: Array<{ file: string; text: string }>, now: number = Date.now()): Policy {
  const problems: Problem[] = [];
  const agents = new Map<string, AgentDef>();
  const secrets = new Map<string, SecretDef>();
  const entries: Array<{ rule: Rule; cursor: Cursor } | Include> = [];
  const shared = new Map<string, Shared>();
  const limits: AgentLimit[] = [];
  const limitCursors: Cursor[] = [];
  const exampleCursors: Cursor[] = [];
  let settings: Settings = { upstreamCaFile: null, upstreamCa: null, dnsHosts: {} };
  let settingsFrom: string | null = null;
  const docs: Doc[] = [];

  for (const { file, text } of sources) {
    const { doc, root } = parseYaml(file, text);
    const top = root?.map(TOP_KEYS);
    for (const ac of top?.get('agents')?.list() ?? []) {
      const a = readAgent(ac, agents);
      if (!a) continue;
      const prev = agents.get(a.name);
      if (prev) ac.fail(`agent "${a.name}" is already defined at ${prev.where}`);
      else agents.set(a.name, a);
    }
    for (const sc of top?.get('secrets')?.list() ?? []) {
      const s = readSecret(sc);
      if (!s) continue;
      const prev = secrets.get(s.name);
      if (prev) sc.fail(`secret "${s.name}" is already defined at ${prev.where}`);
      else secrets.set(s.name, s);
    }
    for (const pc of top?.get('policies')?.list() ?? []) {
      const p = readShared(pc);
      if (!p) continue;
      const prev = shared.get(p.name);
      if (prev) pc.fail(`policy "${p.name}" is already defined at ${prev.where}`);
      else shared.set(p.name, p);
    }
    top
      ?.get('rules')
      ?.list()
      ?.forEach((rc, i) => {
        if (isInclude(rc)) {
          const inc = readInclude(rc);
          if (inc) entries.push(inc);
        } else {
          const rule = readRule(rc, i);
          if (rule) entries.push({ rule, cursor: rc });
        }
      });
    top
      ?.get('limits')
      ?.list()
      ?.forEach((lc, i) => {
        const spec = readRateLimit(lc, ['agents', 'description']);
        if (!spec) return;
        limits.push({ id: `${lc.where()} (limits[${i}])`, agents: readAgents(lc.get('agents')), spec });
        limitCursors.push(lc);
      });
    exampleCursors.push(...(top?.get('examples')?.list() ?? []));
    const st = top?.get('settings');
    if (st) {
      if (settingsFrom) st.fail(`settings are already given in ${settingsFrom}; keep them in one file`);
      else {
        const s = readSettings(st);
        if (s) settings = { ...settings, ...s };
        const ss = st.get('shared_state');
        const shared = ss ? readSharedState(ss) : undefined;
        if (shared) settings = { ...settings, sharedState: shared };
        settingsFrom = st.where();
      }
    }
    const sc = top?.get('scrub');
    const scrub = sc ? readScrub(sc, settings.scrub) : undefined;
    if (scrub) settings = { ...settings, scrub };
    docs.push(doc);
  }

  // Includes expand in place, so file order (and the reported rule) stays what the operator reads.
  const rules: Rule[] = [];
  const late: Problem[] = [];
  const lateFail = (c: Cursor, message: string): void => void late.push({ file: c.doc.file, ...c.doc.pos(c.node), path: c.path, message });
  for (const e of entries) {
    if ('rule' in e) {
      rules.push(e.rule);
      continue;
    }
    const p = shared.get(e.policy);
    if (!p) {
      lateFail(e.cursor, `policy "${e.policy}" is not defined in any rule file${shared.size ? ` (defined: ${[...shared.keys()].join(', ')})` : ''}`);
      continue;
    }
    const origin = `policy ${p.name}, included at ${e.cursor.where()}`;
    for (const r of p.rules) rules.push({ ...r, agents: e.agents, origin });
  }

  // Cross-file checks: named agents must exist (a typo must not silently grant nothing or everything).
  const checkAgents = (set: Rule['agents'], owner: Cursor): void => {
    if (set === 'any') return;
    const at = owner.get('agents') ?? owner;
    for (const a of set) if (!agents.has(a)) lateFail(at, `agent "${a}" is not defined in any rule file`);
  };
  for (const e of entries) checkAgents('rule' in e ? e.rule.agents : e.agents, e.cursor);
  limits.forEach((l, i) => checkAgents(l.agents, limitCursors[i]!));
  const examples = exampleCursors.map((c) => readExample(c, agents)).filter((x): x is Example => x !== undefined);
  problems.push(...late, ...docs.flatMap((d) => d.problems));
  if (problems.length > 0) throw sorted(problems);

  const policy: Policy = { files: sources.map((s) => s.file), agents, secrets, rules, limits, examples, settings, loadedAt: new Date(now) };
  const failures = runExamples(policy, now);
  if (failures.length > 0) throw sorted(failures.map((f) => ({ ...f.example.at, path: 'examples', message: f.message })));
  return policy;
}

function sorted(problems: Problem[]): ConfigError {
  problems.sort((a, b) => (a.file === b.file ? a.line - b.line || a.col - b.col : a.file < b.file ? -1 : 1));
  return new ConfigError(problems);
}

function isInclude(c: Cursor): boolean {
  return c.keys().includes('include');
}

function readInclude(c: Cursor): Include | undefined {
  const m = c.map(['include', 'agents', 'description'], ['agents']);
  const name = m?.get('include') && readName(m.get('include')!, 'policy');
  if (!m || !name) return undefined;
  return { cursor: c, policy: name, agents: readAgents(m.get('agents')) };
}

function readShared(c: Cursor): Shared | undefined {
  const m = c.map(['name', 'rules', 'description'], ['name', 'rules']);
  const name = m?.get('name') && readName(m.get('name')!, 'policy');
  const rules: Rule[] = [];
  m?.get('rules')
    ?.list()
    ?.forEach((rc, i) => {
      if (isInclude(rc)) return void rc.fail('a shared policy cannot include another policy; include both where they are used');
      const r = readRule(rc, i, true);
      if (r) rules.push({ ...r, name: r.name.startsWith('rule-') && !rc.keys().includes('name') ? `${name ?? 'policy'}-${i + 1}` : r.name });
    });
  if (!name) return undefined;
  return { name, where: c.where(), rules };
}

function readAgents(c: Cursor | undefined): Rule['agents'] {
  if (!c) return 'any';
  const list = c.strings() ?? [];
  return list.length === 1 && (list[0] === '*' || list[0] === 'any') ? 'any' : new Set(list);
}

function readExample(c: Cursor, agents: ReadonlyMap<string, AgentDef>): Example | undefined {
  const m = c.map(['request', 'agent', 'expect', 'rule', 'code', 'content_type', 'body', 'tainted', 'description'], ['request', 'expect']);
  if (!m) return undefined;
  let agent = m.get('agent')?.str();
  if (m.get('agent') && agent !== undefined && !agents.has(agent)) return m.get('agent')!.fail(`agent "${agent}" is not defined in any rule file`);
  if (!m.get('agent')) {
    if (agents.size !== 1) return c.fail('give the agent this example runs as ("agent:"); it can be left out only when exactly one agent is defined');
    agent = [...agents.keys()][0];
  }
  const expect = m.get('expect')?.str();
  if (expect !== undefined && expect !== 'allow' && expect !== 'deny' && expect !== 'ask') return m.get('expect')!.fail(`"${expect.slice(0, 40)}" is not allow, deny or ask`);
  const text = m.get('request')?.str();
  if (agent === undefined || expect === undefined || text === undefined) return undefined;
  try {
    const tainted = m.get('tainted')?.strings();
    const request = parseRequestLine(agent, text, {
      contentType: m.get('content_type')?.str() ?? null,
      body: m.get('body')?.str({ nonEmpty: false }) ?? null,
      taints: assumedTaints(tainted, 'example'),
    });
    const { line, col } = c.doc.pos(c.node);
    return { where: c.where(), at: { file: c.doc.file, line, col }, request, text, expect, rule: m.get('rule')?.str() ?? null, code: m.get('code')?.str() ?? null };
  } catch (e) {
    return m.get('request')!.fail((e as Error).message);
  }
}
