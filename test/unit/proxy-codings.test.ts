import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkTransferCoding, contentCoding } from '../../src/proxy/stages/codings.js';
import { upstreamRequestHeaders } from '../../src/proxy/stages/headers.js';
import { isTurretError } from '../../src/core/errors.js';

const refused = (f: () => unknown): boolean => {
  try {
    f();
    return false;
  } catch (e) {
    return isTurretError(e) && e.code === 'upstream_coding_unsupported';
  }
};

describe('response codings (proxy/codings.ts)', () => {
  it('one decodable content coding in any case is accepted; identity or none passes', () => {
    assert.equal(contentCoding('GZip'), 'gzip');
    assert.equal(contentCoding(' br '), 'br');
    assert.equal(contentCoding('gzip,'), 'gzip');
    assert.equal(contentCoding(['x-gzip']), 'x-gzip');
    assert.equal(contentCoding(undefined), 'identity');
    assert.equal(contentCoding(''), 'identity');
    assert.equal(contentCoding('identity'), 'identity');
  });

  it('unknown, undecodable and stacked content codings are refused', () => {
    for (const v of ['zstd', 'compress', 'x-compress', 'x-unknown', '*', 'gzip, gzip', 'identity, gzip', 'gzip, br', ['gzip', 'gzip'], ['br', 'identity']]) {
      assert.ok(
        refused(() => contentCoding(v)),
        JSON.stringify(v),
      );
    }
  });

  it('a transfer coding other than exactly chunked is refused', () => {
    checkTransferCoding(undefined);
    checkTransferCoding('chunked');
    checkTransferCoding('Chunked');
    for (const v of ['gzip', 'gzip, chunked', 'chunked, chunked', 'identity', ['deflate', 'chunked'], 'x-custom']) {
      assert.ok(
        refused(() => checkTransferCoding(v)),
        JSON.stringify(v),
      );
    }
  });

  it('Accept-Encoding upstream names only decodable codings, identity when none is left', () => {
    const ae = (v: string): string[] =>
      upstreamRequestHeaders(['Accept-Encoding', v], 'h.test', 443, 'https')
        .filter(([k]) => k === 'Accept-Encoding')
        .map(([, x]) => x);
    assert.deepEqual(ae('gzip, zstd, br;q=0.5, compress, *'), ['gzip, br;q=0.5']);
    assert.deepEqual(ae('zstd'), ['identity']);
    assert.deepEqual(ae('zstd, compress;q=1'), ['identity']);
  });
});
