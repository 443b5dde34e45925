import { it } from 'node:test';
import assert from 'node:assert/strict';
import { methodOverrides } from '../../src/policy/override.js';

it('finds every override header, lists and case variants, and flags invalid values', () => {
  assert.deepEqual(methodOverrides({}), []);
  assert.deepEqual(methodOverrides({ 'x-http-method-override': 'delete' }), [{ header: 'x-http-method-override', method: 'DELETE' }]);
  assert.deepEqual(methodOverrides({ 'x-method-override': ['GET, PUT'] }), [
    { header: 'x-method-override', method: 'GET' },
    { header: 'x-method-override', method: 'PUT' },
  ]);
  assert.deepEqual(methodOverrides({ 'x-http-method': 'DE LETE' }), [{ header: 'x-http-method', invalid: true }]);
  assert.deepEqual(methodOverrides({ 'x-http-method': '' }), [{ header: 'x-http-method', invalid: true }]);
  assert.deepEqual(methodOverrides({ 'x-other': 'DELETE' }), []);
});
