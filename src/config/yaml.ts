/**
 * A typed cursor over a YAML document that records every problem as `file:line:col: path: problem`
 * (caddy's model: one wrapper adds the location to every config error). Validation collects all
 * problems in a file instead of stopping at the first, so an operator fixes them in one pass.
 *
 * The engine never sees YAML: config/rules.ts, common.ts and secrets.ts turn what these cursors read into policy types.
 */
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node, type Pair } from 'yaml';

export interface Problem {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}

export class ConfigError extends Error {
  /** Bad configuration or usage: exit 2 (main.ts). */
  readonly exitCode = 2;
  constructor(readonly problems: Problem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

export class Doc {
  readonly problems: Problem[] = [];
  constructor(
    readonly file: string,
    private readonly lc: LineCounter,
  ) {}

  pos(node: Node | null | undefined): { line: number; col: number } {
    const off = node?.range?.[0];
    if (off === undefined) return { line: 1, col: 1 };
    return this.lc.linePos(off);
  }

  report(node: Node | null | undefined, path: string, message: string): void {
    const { line, col } = this.pos(node);
    this.problems.push({ file: this.file, line, col, path, message });
  }
}

/** Parse YAML; syntax errors become problems with positions. */
export function parseYaml(file: string, text: string): { doc: Doc; root: Cursor | null } {
  const lc = new LineCounter();
  const parsed = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, merge: false });
  const doc = new Doc(file, lc);
  for (const e of parsed.errors) {
    const { line, col } = lc.linePos(e.pos[0]);
    // yaml's messages quote the offending source line; keep only the first sentence.
    const msg = e.message.split('\n')[0] ?? 'syntax error';
    doc.problems.push({ file, line, col, path: '', message: `YAML syntax: ${msg}` });
  }
  if (parsed.errors.length > 0) return { doc, root: null };
  const contents = parsed.contents as Node | null;
  return { doc, root: contents ? new Cursor(doc, contents, '') : null };
}

export class Cursor {
  constructor(
    readonly doc: Doc,
    readonly node: Node,
    readonly path: string,
  ) {}

  get line(): number {
    return this.doc.pos(this.node).line;
  }

  where(): string {
    return `${this.doc.file}:${this.line}`;
  }

  fail(message: string): undefined {
    this.doc.report(this.node, this.path, message);
    return undefined;
  }

  private child(node: Node, key: string | number): Cursor {
    const path = typeof key === 'number' ? `${this.path}[${key}]` : this.path ? `${this.path}.${key}` : key;
    return new Cursor(this.doc, node, path);
  }

  /**
   * Read a mapping; unknown keys are problems (typos must never be silently ignored in a
   * security policy). Returns the present keys as cursors.
   */
  map(allowed: readonly string[], required: readonly string[] = []): Map<string, Cursor> | undefined {
    if (!isMap(this.node)) return this.fail(`expected a mapping (key: value), got ${describe(this.node)}`);
    const out = new Map<string, Cursor>();
    for (const pair of this.node.items as Pair<Node, Node>[]) {
      const k = pair.key;
      if (!isScalar(k) || typeof k.value !== 'string') {
        this.doc.report(k, this.path, 'keys must be plain strings');
        continue;
      }
      const key = k.value;
      if (!allowed.includes(key)) {
        const hint = suggest(key, allowed);
        this.doc.report(k, this.path ? `${this.path}.${key}` : key, `unknown key${hint ? `; did you mean "${hint}"?` : `; allowed: ${allowed.join(', ')}`}`);
        continue;
      }
      if (pair.value === null || pair.value === undefined) {
        this.doc.report(k, this.path ? `${this.path}.${key}` : key, 'has no value');
        continue;
      }
      out.set(key, this.child(pair.value, key));
    }
    for (const r of required) {
      if (!out.has(r) && !hasKey(this.node, r)) this.fail(`missing required key "${r}"`);
    }
    return out;
  }

  /** The keys of a mapping, without validating them ([] for anything else). */
  keys(): string[] {
    if (!isMap(this.node)) return [];
    return (this.node.items as Pair<Node, Node>[]).map((p) => (isScalar(p.key) ? String(p.key.value) : ''));
  }

  /** One key's value, without validating the mapping (use after map() validated it, or to peek). */
  get(key: string): Cursor | undefined {
    if (!isMap(this.node)) return undefined;
    const pair = (this.node.items as Pair<Node, Node>[]).find((p) => isScalar(p.key) && p.key.value === key);
    return pair?.value ? this.child(pair.value, key) : undefined;
  }

  list(): Cursor[] | undefined {
    if (!isSeq(this.node)) return this.fail(`expected a list, got ${describe(this.node)}`);
    return (this.node.items as Node[]).map((n, i) => this.child(n, i));
  }

  /** A list, or a single scalar treated as a one-element list. */
  listOrOne(): Cursor[] | undefined {
    if (isSeq(this.node)) return this.list();
    return [this];
  }

  str(opts: { nonEmpty?: boolean } = { nonEmpty: true }): string | undefined {
    if (!isScalar(this.node) || typeof this.node.value !== 'string') {
      if (isScalar(this.node) && (typeof this.node.value === 'number' || typeof this.node.value === 'boolean')) {
        return this.fail(`expected a string, got ${typeof this.node.value} ${String(this.node.value)} (quote it)`);
      }
      return this.fail(`expected a string, got ${describe(this.node)}`);
    }
    if (opts.nonEmpty !== false && this.node.value.trim() === '') return this.fail('must not be empty');
    return this.node.value;
  }

  strings(): string[] | undefined {
    const items = this.listOrOne();
    if (!items) return undefined;
    const out: string[] = [];
    for (const c of items) {
      const s = c.str();
      if (s !== undefined) out.push(s);
    }
    return out;
  }

  int(min: number, max: number): number | undefined {
    if (!isScalar(this.node) || typeof this.node.value !== 'number' || !Number.isInteger(this.node.value)) {
      return this.fail(`expected a whole number, got ${describe(this.node)}`);
    }
    if (this.node.value < min || this.node.value > max) return this.fail(`must be between ${min} and ${max}`);
    return this.node.value;
  }

  bool(): boolean | undefined {
    if (!isScalar(this.node) || typeof this.node.value !== 'boolean') return this.fail(`expected true or false, got ${describe(this.node)}`);
    return this.node.value;
  }
}

function hasKey(node: Node, key: string): boolean {
  if (!isMap(node)) return false;
  return (node.items as Pair<Node, Node>[]).some((p) => isScalar(p.key) && p.key.value === key);
}

function describe(node: Node): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    if (node.value === null) return 'nothing (null)';
    return `${typeof node.value} ${JSON.stringify(node.value)}`.slice(0, 60);
  }
  return 'an unsupported YAML node';
}

/** Closest allowed key within edit distance 2, for "did you mean". */
function suggest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const a of allowed) {
    const d = editDistance(key, a);
    if (d < bestD) {
      bestD = d;
      best = a;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0] ?? 0;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j] ?? 0;
      dp[j] = Math.min((dp[j] ?? 0) + 1, (dp[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length] ?? 0;
}
