import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_TABLE, TurretError, asTurretError } from '../../src/core/errors.js';
import { renderErrorsDoc } from '../helpers/errors-doc.js';

it('docs/errors.md lists exactly the error table', () => {
  assert.equal(readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8'), renderErrorsDoc(), 'run: npm run docs:errors');
});

it('every code has a status that fits its class', () => {
  for (const [code, { status }] of Object.entries(ERROR_TABLE)) {
    assert.ok(status >= 400 && status < 600, code);
    assert.match(code, /^[a-z][a-z0-9_]*$/);
  }
});

it('wrapping an unknown error never copies its message (it may hold data)', () => {
  const e = asTurretError(new Error('Bearer fake_secret_value'));
  assert.equal(e.code, 'internal_error');
  assert.ok(!e.message.includes('fake_secret_value'));
  assert.equal(new TurretError('policy_denied').status, 403);
});
