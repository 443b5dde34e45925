/** Host-pattern overlap behind "handles only for secrets some rule of the agent could use". */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { hostPatternsOverlap } from '../../src/policy/usable.js';
import type { HostPattern } from '../../src/policy/types.js';

const p = (source: string): HostPattern => {
  const [name = '', port] = source.split(':');
  const kind = name === '*' ? 'any' : name.startsWith('*.') ? 'suffix' : 'exact';
  return { source, kind, host: kind === 'suffix' ? name.slice(2) : name, port: port === undefined ? null : port === '*' ? 'any' : Number(port) };
};

const cases: Array<[string, string, boolean]> = [
  ['a.test', 'a.test', true],
  ['a.test', 'b.test', false],
  ['*', 'a.test:8443', false], // "*" alone keeps the default ports
  ['*:*', 'a.test:8443', true],
  ['x.svc.test', '*.svc.test', true],
  ['svc.test', '*.svc.test', false], // a suffix pattern never matches its own apex
  ['*.a.svc.test', '*.svc.test', true],
  ['*.a.test', '*.b.test', false],
  ['*.evilsvc.test', '*.svc.test', false], // label boundary
  ['a.test', 'a.test:443', true], // default port covers 443 (https)
  ['a.test', 'a.test:80', true],
  ['a.test', 'a.test:8443', false],
  ['a.test:*', 'a.test:8443', true],
  ['a.test:8443', 'a.test:8443', true],
  ['a.test:8443', 'a.test:9443', false],
];

for (const [a, b, want] of cases) {
  it(`${a} ~ ${b}: ${want}`, () => {
    assert.equal(hostPatternsOverlap(p(a), p(b)), want);
    assert.equal(hostPatternsOverlap(p(b), p(a)), want, 'symmetric');
  });
}
