import { test } from 'node:test';
import assert from 'node:assert/strict';
import { register as globalRegister } from 'prom-client';
import { createMetrics, exposition, METRIC_PREFIX, NO_CODE } from '../../src/metrics/metrics.js';
import { parsePrometheusText, type Sample } from '../helpers/prometheus.js';

const find = (samples: Sample[], name: string, labels: Record<string, string> = {}): Sample | undefined =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

test('the exposition parses as Prometheus text and every name has the turret_ prefix', async () => {
  const m = createMetrics({ version: '9.9.9' });
  const { contentType, body } = await exposition(m);
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  const parsed = parsePrometheusText(body);
  assert.ok(parsed.samples.length > 20);
  for (const s of parsed.samples) assert.ok(s.name.startsWith(METRIC_PREFIX), s.name);
  for (const name of parsed.types.keys()) {
    assert.ok(name.startsWith(METRIC_PREFIX), name);
    assert.ok(parsed.help.has(name), `${name} has HELP`);
  }
  for (const name of [
    'turret_requests_total',
    'turret_request_duration_seconds',
    'turret_upstream_latency_seconds',
    'turret_upstream_connect_seconds',
    'turret_open_tunnels',
    'turret_tunnels_total',
    'turret_leaf_cache_total',
    'turret_leaf_mint_seconds',
    'turret_injections_total',
    'turret_redactions_total',
    'turret_connects_refused_total',
    'turret_reloads_total',
    'turret_last_reload_success_timestamp_seconds',
    'turret_audit_records_total',
    'turret_audit_errors_total',
    'turret_ready',
    'turret_build_info',
    'turret_process_cpu_seconds_total',
  ]) {
    assert.ok(parsed.types.has(name), `${name} is exported`);
  }
  assert.equal(find(parsed.samples, 'turret_build_info', { version: '9.9.9' })?.value, 1);
  assert.equal(find(parsed.samples, 'turret_ready')?.value, 0, 'not ready until the proxy says so');
});

test('closed-set series start at zero so alerts see 0, not no data', async () => {
  const { samples } = parsePrometheusText((await exposition(createMetrics({ defaultMetrics: false }))).body);
  for (const result of ['hit', 'mint']) assert.equal(find(samples, 'turret_leaf_cache_total', { result })?.value, 0);
  for (const result of ['ok', 'failed']) assert.equal(find(samples, 'turret_reloads_total', { result })?.value, 0);
  for (const mode of ['intercept', 'passthrough']) assert.equal(find(samples, 'turret_tunnels_total', { mode })?.value, 0);
});

test('recorded values come out with the right labels, including hostile label values', async () => {
  const m = createMetrics({ defaultMetrics: false });
  const nasty = 'agent "quoted" \\ back\nnewline';
  m.requests.inc({ agent: nasty, decision: 'denied', code: 'policy_denied' });
  m.requests.inc({ agent: nasty, decision: 'denied', code: 'policy_denied' });
  m.requests.inc({ agent: 'b', decision: 'allowed', code: NO_CODE });
  m.upstreamLatency.observe({ scheme: 'https' }, 0.03);
  m.upstreamLatency.observe({ scheme: 'https' }, 7);
  m.openTunnels.inc();
  m.openTunnels.inc();
  m.openTunnels.dec();
  m.leafCache.inc({ result: 'mint' });
  m.injections.inc({ secret: 'github' });
  m.redactions.inc({ type: 'github_token' }, 3);
  m.connectsRefused.inc({ class: 'loopback' });
  m.reloads.inc({ result: 'failed' });
  m.ready.set(1);
  const { samples } = parsePrometheusText((await exposition(m)).body);
  assert.equal(find(samples, 'turret_requests_total', { agent: nasty, decision: 'denied', code: 'policy_denied' })?.value, 2);
  assert.equal(find(samples, 'turret_requests_total', { agent: 'b', code: 'none' })?.value, 1);
  assert.equal(find(samples, 'turret_upstream_latency_seconds_bucket', { scheme: 'https', le: '0.05' })?.value, 1);
  assert.equal(find(samples, 'turret_upstream_latency_seconds_bucket', { scheme: 'https', le: '+Inf' })?.value, 2);
  assert.equal(find(samples, 'turret_upstream_latency_seconds_count', { scheme: 'https' })?.value, 2);
  assert.equal(find(samples, 'turret_open_tunnels')?.value, 1);
  assert.equal(find(samples, 'turret_leaf_cache_total', { result: 'mint' })?.value, 1);
  assert.equal(find(samples, 'turret_injections_total', { secret: 'github' })?.value, 1);
  assert.equal(find(samples, 'turret_redactions_total', { type: 'github_token' })?.value, 3);
  assert.equal(find(samples, 'turret_connects_refused_total', { class: 'loopback' })?.value, 1);
  assert.equal(find(samples, 'turret_reloads_total', { result: 'failed' })?.value, 1);
  assert.equal(find(samples, 'turret_ready')?.value, 1);
});

test('each call gets a private registry; the global one stays empty and two instances do not clash', async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.requests.inc({ agent: 'x', decision: 'denied', code: 'policy_denied' });
  const bText = (await exposition(b)).body;
  assert.ok(!bText.includes('agent="x"'));
  assert.ok(!(await globalRegister.metrics()).includes('turret_'));
});
