/**
 * metrics/hot.ts against prom-client itself: the same observations fed to a hot counter or
 * histogram and to prom-client's own Counter or Histogram (same name, help, labels, buckets) must
 * give the same Prometheus text and the same JSON, byte for byte: series order, label order and
 * escaping (quotes, backslashes, newlines, non-ASCII), bucket boundaries, _sum and _count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../../src/metrics/hot.js';
import { createMetrics, exposition } from '../../src/metrics/metrics.js';
import { parsePrometheusText } from '../helpers/prometheus.js';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const HOSTILE = ['plain', 'q"uo"te', 'back\\slash', 'new\nline', 'tab\tcr\r', 'ünïcødé ✓ 🔑', '', '\\"\n', 'a,b=c}{', 'none'];

/** A deterministic stream of label tuples and values (no Math.random: a failure must replay). */
function* stream(n: number): Generator<{ a: string; b: string; c: string; v: number }> {
  let x = 12345;
  const next = (): number => (x = (x * 1103515245 + 12345) % 2147483648);
  const special = [0, -0, -1, 0.005, 0.0050000001, 60, 60.5, 1e9, 1e-12, 0.1 + 0.2, Number.MIN_VALUE];
  for (let i = 0; i < n; i++) {
    const v = i % 7 === 0 ? (special[next() % special.length] as number) : (next() % 100000) / 1000 ** ((next() % 3) + 1);
    yield { a: HOSTILE[next() % HOSTILE.length] as string, b: HOSTILE[next() % 3] as string, c: ['x', 'y'][next() % 2] as string, v };
  }
}

async function pair(feed: (hot: Registry, ref: Registry) => void): Promise<void> {
  const hot = new Registry();
  const ref = new Registry();
  feed(hot, ref);
  const [h, r] = await Promise.all([hot.metrics(), ref.metrics()]);
  assert.equal(h, r);
  assert.deepEqual(await hot.getMetricsAsJSON(), await ref.getMetricsAsJSON());
  // The text is also valid Prometheus exposition (strict parser: escapes, cumulative buckets).
  parsePrometheusText(h);
}

test('a counter with 0 to 3 labels prints what prom-client prints for the same increments', async () => {
  await pair((hot, ref) => {
    const h0 = new HotCounter(hot, 't_zero_total', 'no labels', []);
    const r0 = new Counter({ name: 't_zero_total', help: 'no labels', registers: [ref] });
    const h1 = new HotCounter(hot, 't_one_total', 'one "label" \\ help\nline', ['secret']);
    const r1 = new Counter({ name: 't_one_total', help: 'one "label" \\ help\nline', labelNames: ['secret'], registers: [ref] });
    const h3 = new HotCounter(hot, 't_three_total', 'three', ['agent', 'decision', 'code']);
    const r3 = new Counter({ name: 't_three_total', help: 'three', labelNames: ['agent', 'decision', 'code'], registers: [ref] });
    new HotCounter(hot, 't_unused_total', 'never incremented', ['x']);
    new Counter({ name: 't_unused_total', help: 'never incremented', labelNames: ['x'], registers: [ref] });
    let i = 0;
    for (const { a, b, c } of stream(3000)) {
      h0.at().inc();
      r0.inc();
      h1.at(a).inc();
      r1.inc({ secret: a });
      const odd = i++ % 2 === 1;
      if (odd) {
        h3.at(a, b, c).inc();
      } else {
        // The labels-object form (the cold callers use it), with labels in another key order.
        h3.inc({ code: c, agent: a, decision: b }, 3);
      }
      r3.inc({ agent: a, decision: b, code: c }, odd ? 1 : 3);
    }
  });
});

test('a histogram prints what prom-client prints: buckets, bounds, +Inf, _sum, _count, hostile labels', async () => {
  await pair((hot, ref) => {
    const h1 = new HotHistogram(hot, 't_seconds', 'by decision', ['decision'], BUCKETS);
    const r1 = new Histogram({ name: 't_seconds', help: 'by decision', labelNames: ['decision'], buckets: BUCKETS, registers: [ref] });
    const h2 = new HotHistogram(hot, 't2_seconds', 'two labels', ['scheme', 'x'], [0.1, 1]);
    const r2 = new Histogram({ name: 't2_seconds', help: 'two labels', labelNames: ['scheme', 'x'], buckets: [0.1, 1], registers: [ref] });
    const h0 = new HotHistogram(hot, 't0_seconds', 'none', [], [0.0005, 0.001]);
    const r0 = new Histogram({ name: 't0_seconds', help: 'none', buckets: [0.0005, 0.001], registers: [ref] });
    let i = 0;
    for (const { a, b, v } of stream(5000)) {
      if (i++ % 3) h1.at(a).observe(v);
      else h1.observe({ decision: a }, v);
      r1.observe({ decision: a }, v);
      h2.at(b, a).observe(v);
      r2.observe({ scheme: b, x: a }, v);
      h0.at().observe(v);
      r0.observe(v);
    }
  });
});

test('bad values are refused as prom-client refuses them, and leave no trace', async () => {
  const reg = new Registry();
  const c = new HotCounter(reg, 't_total', 'h', ['a']);
  const h = new HotHistogram(reg, 't_seconds', 'h', ['a'], [1]);
  assert.throws(() => c.inc({ a: 'x' }, -1), /not possible to decrease/);
  assert.throws(() => c.inc({ a: 'x' }, Number.POSITIVE_INFINITY), TypeError);
  assert.throws(() => c.inc({ a: 'x' }, Number.NaN), TypeError);
  assert.throws(() => c.inc({ b: 'x' } as unknown as { a: string }), /not included in initial labelset/);
  assert.throws(() => h.at('x').observe(Number.NaN), TypeError);
  assert.throws(() => h.observe({ a: 'x' }, Number.POSITIVE_INFINITY), TypeError);
  const { samples } = parsePrometheusText(await reg.metrics());
  assert.ok(
    samples.every((s) => s.value === 0),
    JSON.stringify(samples),
  );
});

test('reset() empties the series as prom-client does', async () => {
  await pair((hot, ref) => {
    const h = new HotHistogram(hot, 't_seconds', 'h', ['a'], [1]);
    const r = new Histogram({ name: 't_seconds', help: 'h', labelNames: ['a'], buckets: [1], registers: [ref] });
    const c = new HotCounter(hot, 't_total', 'h', ['a']);
    const rc = new Counter({ name: 't_total', help: 'h', labelNames: ['a'], registers: [ref] });
    for (const v of [0.5, 2]) {
      h.at('one').observe(v);
      r.observe({ a: 'one' }, v);
      c.at('one').inc();
      rc.inc({ a: 'one' });
    }
    hot.resetMetrics();
    ref.resetMetrics();
    h.at('two').observe(0.7);
    r.observe({ a: 'two' }, 0.7);
    c.at('two').inc();
    rc.inc({ a: 'two' });
  });
});

test('createMetrics keeps the registration order and the per-request families in it', async () => {
  const m = createMetrics({ defaultMetrics: false });
  m.requests.at('agent-a', 'allowed', 'none').inc();
  m.requestDuration.at('allowed').observe(0.0002);
  m.upstreamLatency.at('https').observe(0.0001);
  m.auditRecords.at('request', 'completed').inc();
  const { body } = await exposition(m);
  const names = [...body.matchAll(/^# TYPE (\S+)/gm)].map((x) => x[1]);
  assert.deepEqual(names.slice(0, 4), ['turret_requests_total', 'turret_request_duration_seconds', 'turret_upstream_latency_seconds', 'turret_upstream_connect_seconds']);
  assert.match(body, /^turret_requests_total\{agent="agent-a",decision="allowed",code="none"\} 1$/m);
  assert.match(body, /^turret_request_duration_seconds_bucket\{le="0\.005",decision="allowed"\} 1$/m);
  assert.match(body, /^turret_upstream_latency_seconds_sum\{scheme="https"\} 0\.0001$/m);
  assert.match(body, /^turret_audit_records_total\{event="request",outcome="completed"\} 1$/m);
});
