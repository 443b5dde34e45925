import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExpositionError, parsePrometheusText } from '../helpers/prometheus.js';

// The parser is the check the /metrics tests rely on, so it must reject what Prometheus rejects.

const ok = `# HELP a_total Things.
# TYPE a_total counter
a_total{x="1",y="q\\"\\\\\\n"} 3
a_total{x="2",} 4 1700000000000
# a free comment
# TYPE h histogram
h_bucket{le="0.1"} 1
h_bucket{le="1"} 2
h_bucket{le="+Inf"} 2
h_sum 0.6
h_count 2
# TYPE g gauge
g NaN
g{k="v"} -Inf
g{k="w"} 1.5e-7
`;

test('a valid exposition parses with types, help, escapes and special values', () => {
  const p = parsePrometheusText(ok);
  assert.equal(p.types.get('a_total'), 'counter');
  assert.equal(p.help.get('a_total'), 'Things.');
  assert.deepEqual(p.samples[0]?.labels, { x: '1', y: 'q"\\\n' });
  assert.equal(p.samples[1]?.value, 4);
  assert.ok(Number.isNaN(p.samples.find((s) => s.name === 'g' && Object.keys(s.labels).length === 0)?.value));
  assert.equal(p.samples.find((s) => s.labels['k'] === 'v')?.value, Number.NEGATIVE_INFINITY);
  assert.equal(parsePrometheusText('').samples.length, 0);
});

test('invalid expositions are rejected', () => {
  const bad: [string, string][] = [
    ['no trailing newline', 'a 1'],
    ['bad metric name', '1abc 1\n'],
    ['bad value', 'a one\n'],
    ['unquoted label', 'a{x=1} 1\n'],
    ['bad escape', 'a{x="\\t"} 1\n'],
    ['unterminated label', 'a{x="1} 1\n'],
    ['bad label name', 'a{1x="1"} 1\n'],
    ['duplicate label', 'a{x="1",x="2"} 1\n'],
    ['duplicate series', 'a{x="1"} 1\na{x="1"} 2\n'],
    ['TYPE after samples', 'a 1\n# TYPE a counter\n'],
    ['second TYPE', '# TYPE a counter\n# TYPE a gauge\n'],
    ['unknown type', '# TYPE a meter\n'],
    ['extra fields', 'a 1 2 3\n'],
    ['bad timestamp', 'a 1 soon\n'],
    ['non-cumulative buckets', '# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="+Inf"} 3\nh_count 3\n'],
    ['+Inf differs from count', '# TYPE h histogram\nh_bucket{le="+Inf"} 3\nh_count 4\n'],
    ['histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 3\nh_count 3\n'],
    ['bucket without le', '# TYPE h histogram\nh_bucket 3\nh_count 3\n'],
  ];
  for (const [why, text] of bad) assert.throws(() => parsePrometheusText(text), ExpositionError, why);
});
