/**
 * When the scrubber itself fails (a WebAssembly trap, a bug: scrub/failed.ts), the places that
 * scrub text on the way out of a failure still answer and never throw: a log line is replaced by a
 * fixed one, a refusal's text by Turret's own words. Nothing unscanned is written either way.
 * (Through the proxy: test/integration/scrub-wasm.test.ts, the trapping keyword loop.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createLogger } from '../../src/core/log.js';
import { TurretError } from '../../src/core/errors.js';
import { denialBody } from '../../src/proxy/stages/respond.js';
import { scrubFailed } from '../../src/scrub/failed.js';

const failing = (): string => {
  throw scrubFailed(Object.assign(new Error('memory access out of bounds'), { name: 'RuntimeError' }));
};

test('a log call whose scrubber fails writes a fixed line and does not throw; every level', () => {
  const secret = `fake_${randomBytes(16).toString('hex')}`;
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
  log.setScrub(failing);
  for (const level of ['debug', 'info', 'warn', 'error'] as const) {
    assert.doesNotThrow(() => log[level](`upstream said ${secret}`, { error: `stack with ${secret}`, detail: secret }));
  }
  assert.equal(lines.length, 4);
  lines.forEach((l, i) => {
    assert.ok(!l.includes(secret), `line ${i} holds the secret: ${l}`);
    const j = JSON.parse(l) as { level: string; msg: string };
    assert.equal(j.level, ['debug', 'info', 'warn', 'error'][i]);
    assert.equal(j.msg, 'log line withheld: the scrubber failed on it');
  });
  // A working scrubber again: lines are scrubbed, not withheld.
  log.setScrub((l) => l.split(secret).join('[R]'));
  log.info(`again ${secret}`);
  assert.equal((JSON.parse(lines.at(-1) ?? '{}') as { msg: string }).msg, 'again [R]');
});

test("a refusal whose scrubber fails answers with Turret's own words only: no target, no reason, the code", () => {
  const secret = `fake_${randomBytes(16).toString('hex')}`;
  for (const err of [
    new TurretError('policy_denied', `the rule forbids ${secret}`),
    new TurretError('internal_error', 'the response scrubber failed; nothing it had not scanned was sent'),
    new TurretError('client_timeout', 'too slow'),
  ]) {
    let body = '';
    assert.doesNotThrow(() => (body = denialBody(err, { method: 'GET', target: `https://api.example.test/x?k=${secret}`, scrub: failing })));
    assert.ok(!body.includes(secret), body);
    assert.ok(!body.includes('api.example.test'), body);
    assert.ok(body.includes(`Code: ${err.code}`), body);
    assert.match(body, /withheld/);
  }
  // With a working scrubber the full text is there.
  const ok = denialBody(new TurretError('policy_denied', 'no'), { method: 'GET', target: 'https://api.example.test/x', scrub: (s) => s });
  assert.ok(ok.includes('GET https://api.example.test/x') && ok.includes('Reason: no'), ok);
});
