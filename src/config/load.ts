/**
 * Load every `*.yaml` / `*.yml` file of a rules directory (sorted by name) into one Policy.
 * Lifecycle (caddy's, in one place): read → parse → validate (all problems, with file:line:col)
 * → compile → cross-check across files → return. Nothing is half-applied: any problem throws a
 * ConfigError and the caller keeps whatever policy it had (fail closed on first load).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { AgentDef, Policy, Rule, SecretDef, Settings } from '../policy/types.js';
import { readRule, readSettings } from './rules.js';
import { readAgent, readSecret } from './secrets.js';
import { ConfigError, parseYaml, type Problem } from './yaml.js';

const TOP_KEYS = ['agents', 'secrets', 'rules', 'settings'] as const;
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

export async function loadPolicy(dir: string): Promise<Policy> {
  const files = await listRuleFiles(dir);
  const texts = await Promise.all(
    files.map(async (f) => {
      const st = await fs.stat(f);
      if (st.size > MAX_FILE_BYTES) throw new ConfigError([{ file: f, line: 1, col: 1, path: '', message: `file is larger than ${MAX_FILE_BYTES} bytes` }]);
      return fs.readFile(f, 'utf8');
    }),
  );
  return compilePolicy(files.map((f, i) => ({ file: f, text: texts[i] ?? '' })));
}

/** Compile rule-file texts (already read) into a Policy; exported for golden tests. */
export function compilePolicy(sources: Array<{ file: string; text: string }>): Policy {
  const problems: Problem[] = [];
  const agents = new Map<string, AgentDef>();
  const secrets = new Map<string, SecretDef>();
  const rules: Rule[] = [];
  let settings: Settings = { upstreamCaFile: null, dnsHosts: {} };
  let settingsFrom: string | null = null;

  for (const { file, text } of sources) {
    const { doc, root } = parseYaml(file, text);
    if (root) {
      const top = root.map(TOP_KEYS);
      for (const ac of top?.get('agents')?.list() ?? []) {
        const a = readAgent(ac);
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
      top
        ?.get('rules')
        ?.list()
        ?.forEach((rc, i) => {
          const r = readRule(rc, i);
          if (r) rules.push(r);
        });
      const st = top?.get('settings');
      if (st) {
        if (settingsFrom) st.fail(`settings are already given in ${settingsFrom}; keep them in one file`);
        else {
          const s = readSettings(st);
          if (s) settings = { ...settings, ...s };
          settingsFrom = st.where();
        }
      }
    }
    problems.push(...doc.problems);
  }

  // Cross-file checks: rule agents must exist (a typo must not silently grant nothing or everything).
  for (const r of rules) {
    if (r.agents === 'any') continue;
    for (const a of r.agents) {
      if (!agents.has(a)) {
        const [file, line] = splitWhere(r.id);
        problems.push({ file, line, col: 1, path: `rules(${r.name}).agents`, message: `agent "${a}" is not defined in any rule file` });
      }
    }
  }
  if (problems.length > 0) {
    problems.sort((a, b) => (a.file === b.file ? a.line - b.line || a.col - b.col : a.file < b.file ? -1 : 1));
    throw new ConfigError(problems);
  }
  return { files: sources.map((s) => s.file), agents, secrets, rules, settings, loadedAt: new Date() };
}

function splitWhere(where: string): [string, number] {
  const i = where.lastIndexOf(':');
  return [where.slice(0, i), Number(where.slice(i + 1))];
}
