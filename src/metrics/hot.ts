/**
 * Counters and histograms for the per-request path. prom-client's own `inc`/`observe` hash the
 * labels object into a string, validate it and (histograms) allocate a closure and a pair object
 * on every call: about 1.2 µs and several small objects per request for Turret's four per-request
 * updates (docs/benchmarks.md, "Seventh pass: metrics"). Here a series is found by one Map lookup
 * per label value (no string building), a counter update is one addition and a histogram update
 * a bucket search over a Float64Array; prom-client sees nothing until /metrics is scraped.
 *
 * At a scrape the Registry calls `getForPromString()` (or `get()`), exactly as it does for its own
 * Counter and Histogram, and formats the values itself: the same names, HELP, TYPE, label order
 * and escaping, bucket lines, _sum and _count as prom-client's own classes produce for the same
 * observations. test/unit/metrics-hot.test.ts feeds both the same observations and compares the
 * text; a prom-client upgrade that changed its value shapes would fail there.
 *
 * Memory: one series per distinct label-value tuple, as prom-client keeps (the labels come from
 * closed sets and configuration, metrics.ts), plus one small Map per distinct label prefix.
 * Series live until `reset()`, as prom-client's do.
 */
import type { Metric } from 'prom-client';

type Labels<L extends string> = Record<L, string>;
type Tree<S> = Map<string, Tree<S> | S>;

/** Series keyed by their label values, in the order they were first recorded (prom-client's order). */
abstract class HotMetric<L extends string, S, V extends string[]> {
  readonly aggregator = 'sum';
  protected series: S[] = [];
  private tree: Tree<S> = new Map();
  private only: S | undefined;

  constructor(
    registry: { registerMetric(m: Metric): void },
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
  ) {
    if (labelNames.length > 3) throw new Error(`${name}: at most 3 labels`);
    // The Registry reads name, help, type and the values from getForPromString()/get(), nothing else.
    registry.registerMetric(this as unknown as Metric);
  }

  protected abstract create(labels: Labels<L>): S;

  /**
   * The series for these label values, in labelNames order; created (and shown from the next
   * scrape on) the first time. Call it only to record into the series, as prom-client's
   * `inc`/`observe` would create it. V (metrics.ts) makes the compiler check how many are given.
   */
  readonly at = this.find as unknown as (...values: V) => S;

  private find(a?: string, b?: string, c?: string): S {
    // No array or string is built here: this runs several times per request.
    switch (this.labelNames.length) {
      case 0:
        return (this.only ??= this.add([]));
      case 1:
        return this.leaf(this.tree, a, a, b, c);
      case 2:
        return this.leaf(this.branch(this.tree, a), b, a, b, c);
      default:
        return this.leaf(this.branch(this.branch(this.tree, a), b), c, a, b, c);
    }
  }

  private branch(node: Tree<S>, v: string | undefined): Tree<S> {
    let next = node.get(v as string) as Tree<S> | undefined;
    if (next === undefined) node.set(v as string, (next = new Map()));
    return next;
  }

  private leaf(node: Tree<S>, v: string | undefined, a?: string, b?: string, c?: string): S {
    let s = node.get(v as string) as S | undefined;
    if (s === undefined) node.set(v as string, (s = this.add([a, b, c].slice(0, this.labelNames.length) as string[])));
    return s;
  }

  /** The series for a labels object (prom-client's calling convention; the cold paths use it). */
  protected atLabels(labels: Labels<L>): S {
    for (const k of Object.keys(labels)) {
      if (!this.labelNames.includes(k as L)) throw new Error(`Added label "${k}" is not included in initial labelset: ${JSON.stringify(this.labelNames)}`);
    }
    const [a, b, c] = this.labelNames.map((k) => labels[k]);
    return this.find(a, b, c);
  }

  private add(values: string[]): S {
    // The labels object keeps labelNames order: prom-client prints labels in its key order.
    const labels = {} as Labels<L>;
    this.labelNames.forEach((k, i) => (labels[k] = values[i] as string));
    const s = this.create(labels);
    this.series.push(s);
    return s;
  }

  reset(): void {
    this.series = [];
    this.tree = new Map();
    this.only = undefined;
  }
}

export class CounterSeries<L extends string> {
  value = 0;
  constructor(readonly labels: Labels<L>) {}
  /** Adds `n` (1 on the per-request path; HotCounter.inc checks other values). */
  inc(n = 1): void {
    this.value += n;
  }
}

export class HotCounter<L extends string, V extends string[] = string[]> extends HotMetric<L, CounterSeries<L>, V> {
  readonly type = 'counter';

  protected create(labels: Labels<L>): CounterSeries<L> {
    return new CounterSeries(labels);
  }

  /** prom-client's `Counter.inc(labels, value)`, with its checks (and NaN refused, which prom-client adds). */
  inc(labels: Labels<L>, value = 1): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    if (value < 0) throw new Error('It is not possible to decrease a counter');
    this.atLabels(labels).inc(value);
  }

  getForPromString(): { name: string; help: string; type: 'counter'; values: Array<{ labels: Labels<L>; value: number }>; aggregator: 'sum' } {
    return { name: this.name, help: this.help, type: this.type, values: this.series.map((s) => ({ labels: s.labels, value: s.value })), aggregator: this.aggregator };
  }

  get(): Promise<ReturnType<HotCounter<L, V>['getForPromString']>> {
    return Promise.resolve(this.getForPromString());
  }
}

export class HistogramSeries<L extends string> {
  sum = 0;
  count = 0;
  /** Observations per bucket (not cumulative); a value above every bound counts only in `count`. */
  readonly buckets: Float64Array;
  constructor(
    readonly labels: Labels<L>,
    private readonly bounds: readonly number[],
  ) {
    this.buckets = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const b = this.bounds;
    // Linear like prom-client: request times sit in the first buckets.
    let i = 0;
    while (i < b.length && value > (b[i] as number)) i++;
    if (i < b.length) this.buckets[i] = (this.buckets[i] as number) + 1;
    // Same order of additions as prom-client, so _sum is the same double.
    this.sum += value;
    this.count += 1;
  }
}

interface BucketValue<L extends string> {
  labels: { le: number | '+Inf' } | Record<string, never>;
  sharedLabels: Labels<L>;
  value: number;
  metricName: string;
  /** Always null (bucket) or undefined (_sum, _count): Turret enables no exemplars; kept for JSON parity. */
  exemplar: null | undefined;
}

export class HotHistogram<L extends string, V extends string[] = string[]> extends HotMetric<L, HistogramSeries<L>, V> {
  readonly type = 'histogram';
  readonly bounds: readonly number[];

  constructor(registry: { registerMetric(m: Metric): void }, name: string, help: string, labelNames: readonly L[], buckets: readonly number[]) {
    super(registry, name, help, labelNames);
    // In the given order, as prom-client searches them (metrics.ts passes them ascending).
    this.bounds = Object.freeze([...buckets]);
  }

  protected create(labels: Labels<L>): HistogramSeries<L> {
    return new HistogramSeries(labels, this.bounds);
  }

  /** prom-client's `Histogram.observe(labels, value)`. */
  observe(labels: Labels<L>, value: number): void {
    this.atLabels(labels).observe(value);
  }

  /** The values prom-client's Histogram hands its Registry: cumulative buckets, +Inf, _sum, _count per series. */
  getForPromString(): { name: string; help: string; type: 'histogram'; values: Array<BucketValue<L>>; aggregator: 'sum' } {
    const bucket = `${this.name}_bucket`;
    const values: Array<BucketValue<L>> = [];
    for (const s of this.series) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.buckets[i] as number;
        values.push({ labels: { le }, sharedLabels: s.labels, value: acc, metricName: bucket, exemplar: null });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: bucket, exemplar: null });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum`, exemplar: undefined });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count`, exemplar: undefined });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** prom-client's JSON form (Registry.getMetricsAsJSON): shared labels folded into each value's labels. */
  get(): Promise<{
    name: string;
    help: string;
    type: 'histogram';
    values: Array<{ labels: Record<string, string | number>; value: number; metricName: string; exemplar: null | undefined }>;
    aggregator: 'sum';
  }> {
    const d = this.getForPromString();
    const values = d.values.map(({ labels, sharedLabels, value, metricName, exemplar }) => ({ value, metricName, exemplar, labels: { ...labels, ...sharedLabels } }));
    return Promise.resolve({ ...d, values });
  }
}
