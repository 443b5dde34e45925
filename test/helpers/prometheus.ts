/**
 * A strict parser for the Prometheus text exposition format 0.0.4, used by tests (unit and the
 * admin-listener integration test) to prove /metrics is valid, and usable by tooling that wants
 * to read a scrape. Strict on purpose: it rejects what the Prometheus server would reject
 * (bad names, bad label escapes, duplicate series, a TYPE after its samples) and also checks
 * histogram consistency (cumulative buckets, +Inf bucket equal to _count).
 * https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** 1-based line in the text. */
  line: number;
}

export interface ParsedExposition {
  types: Map<string, MetricType>;
  help: Map<string, string>;
  samples: Sample[];
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly MetricType[] = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

export class ExpositionError extends Error {
  constructor(line: number, problem: string) {
    super(`line ${line}: ${problem}`);
    this.name = 'ExpositionError';
  }
}

/** Accepts what Prometheus accepts (Go's strconv.ParseFloat): NaN and Inf in any case; prom-client writes "Nan". */
function parseValue(s: string, line: number): number {
  const lower = s.toLowerCase();
  if (lower === 'nan') return Number.NaN;
  if (/^\+?inf(inity)?$/.test(lower)) return Number.POSITIVE_INFINITY;
  if (/^-inf(inity)?$/.test(lower)) return Number.NEGATIVE_INFINITY;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new ExpositionError(line, `bad value "${s}"`);
  return Number(s);
}

/** Parses `{a="x",b="y\"z"}` starting at text[0] === '{'; returns labels and the rest after '}'. */
function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = Object.create(null) as Record<string, string>;
  let i = 1;
  for (;;) {
    if (text[i] === '}') return { labels, rest: text.slice(i + 1) };
    const eq = text.indexOf('=', i);
    if (eq === -1) throw new ExpositionError(line, 'label without "="');
    const name = text.slice(i, eq).trim();
    if (!LABEL_RE.test(name)) throw new ExpositionError(line, `bad label name "${name}"`);
    if (name in labels) throw new ExpositionError(line, `duplicate label "${name}"`);
    if (text[eq + 1] !== '"') throw new ExpositionError(line, `label "${name}" value is not quoted`);
    let v = '';
    let j = eq + 2;
    for (; ; j++) {
      const c = text[j];
      if (c === undefined) throw new ExpositionError(line, `unterminated value of label "${name}"`);
      if (c === '"') break;
      if (c === '\\') {
        const e = text[++j];
        if (e === '\\') v += '\\';
        else if (e === '"') v += '"';
        else if (e === 'n') v += '\n';
        else throw new ExpositionError(line, `bad escape in label "${name}"`);
      } else {
        v += c;
      }
    }
    labels[name] = v;
    i = j + 1;
    if (text[i] === ',') i += 1;
    else if (text[i] !== '}') throw new ExpositionError(line, 'expected "," or "}" after a label');
  }
}

/** The family a sample belongs to: histogram and summary samples carry a suffix. */
function familyOf(name: string, types: Map<string, MetricType>): string | undefined {
  if (types.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const t = types.get(base);
    if (t === 'histogram' || (t === 'summary' && suffix !== '_bucket')) return base;
  }
  return undefined;
}

export function parsePrometheusText(text: string): ParsedExposition {
  if (text.length > 0 && !text.endsWith('\n')) throw new ExpositionError(text.split('\n').length, 'text must end with a newline');
  const types = new Map<string, MetricType>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  const sampled = new Set<string>();
  const lines = text.split('\n').slice(0, -1);
  for (const [idx, raw] of lines.entries()) {
    const line = idx + 1;
    if (raw.trim() === '') continue;
    if (raw.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(raw);
      if (m === null) continue; // an ordinary comment
      const [, kind, name = '', arg = ''] = m;
      if (!NAME_RE.test(name)) throw new ExpositionError(line, `bad metric name "${name}"`);
      if (kind === 'HELP') {
        if (help.has(name)) throw new ExpositionError(line, `second HELP for ${name}`);
        help.set(name, arg);
      } else {
        const t = arg.trim() as MetricType;
        if (!TYPES.includes(t)) throw new ExpositionError(line, `bad type "${arg}" for ${name}`);
        if (types.has(name)) throw new ExpositionError(line, `second TYPE for ${name}`);
        if (sampled.has(name)) throw new ExpositionError(line, `TYPE for ${name} after its samples`);
        types.set(name, t);
      }
      continue;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(raw);
    if (nameMatch === null) throw new ExpositionError(line, 'sample does not start with a metric name');
    const name = nameMatch[0];
    let rest = raw.slice(name.length);
    let labels: Record<string, string> = Object.create(null) as Record<string, string>;
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const parts = rest.trim().split(/\s+/);
    if (parts.length < 1 || parts.length > 2 || parts[0] === '') throw new ExpositionError(line, 'expected "value [timestamp]"');
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new ExpositionError(line, 'bad timestamp');
    const value = parseValue(parts[0] ?? '', line);
    const family = familyOf(name, types) ?? name;
    sampled.add(family);
    const key = `${name}{${Object.keys(labels)
      .sort()
      .map((k) => `${k}=${JSON.stringify(labels[k])}`)
      .join(',')}}`;
    if (seen.has(key)) throw new ExpositionError(line, `duplicate series ${key}`);
    seen.add(key);
    samples.push({ name, labels: { ...labels }, value, line });
  }
  checkHistograms(types, samples);
  return { types, help, samples };
}

/** Buckets must be cumulative and the +Inf bucket must equal _count, per label set. */
function checkHistograms(types: Map<string, MetricType>, samples: Sample[]): void {
  for (const [family, t] of types) {
    if (t !== 'histogram') continue;
    const groups = new Map<string, { buckets: { le: number; v: number; line: number }[]; count?: number }>();
    const keyOf = (s: Sample): string =>
      JSON.stringify(
        Object.entries(s.labels)
          .filter(([k]) => k !== 'le')
          .sort(([a], [b]) => (a < b ? -1 : 1)),
      );
    for (const s of samples) {
      if (s.name !== `${family}_bucket` && s.name !== `${family}_count`) continue;
      const g = groups.get(keyOf(s)) ?? { buckets: [] };
      groups.set(keyOf(s), g);
      if (s.name.endsWith('_count')) g.count = s.value;
      else {
        const le = s.labels['le'];
        if (le === undefined) throw new ExpositionError(s.line, `${s.name} without "le"`);
        g.buckets.push({ le: parseValue(le, s.line), v: s.value, line: s.line });
      }
    }
    for (const g of groups.values()) {
      const sorted = [...g.buckets].sort((a, b) => a.le - b.le);
      for (let i = 1; i < sorted.length; i++) {
        const cur = sorted[i];
        if (cur !== undefined && cur.v < (sorted[i - 1]?.v ?? 0)) throw new ExpositionError(cur.line, `${family} buckets are not cumulative`);
      }
      const inf = sorted.at(-1);
      if (inf === undefined || inf.le !== Number.POSITIVE_INFINITY) throw new ExpositionError(0, `${family} has no +Inf bucket`);
      if (g.count !== inf.v) throw new ExpositionError(inf.line, `${family} +Inf bucket differs from _count`);
    }
  }
}
