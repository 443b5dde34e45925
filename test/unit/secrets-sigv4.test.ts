/**
 * SigV4 re-signing against AWS's own published test vectors (S3 API reference, "Signature
 * calculations … transferring payload in multiple chunks", Example: PUT Object), so the signer
 * wiring and the chunk chain are checked against values Turret did not compute.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { chunkResigner, chunkSignature } from '../../src/secrets/sigv4-chunked.js';
import { parseAuthorization, presignedAuth, resignHeaders, signingKey } from '../../src/secrets/sigv4.js';

const CREDS = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
const DATE = new Date(Date.UTC(2013, 4, 24));
const SCOPE = '20130524/us-east-1/s3/aws4_request';
const SEED = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9';
const CHUNK1 = 'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648';
const CHUNK2 = '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497';
const FINAL = 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9';

describe('SigV4 re-signing', () => {
  const auth = {
    accessKeyId: 'trt_x',
    shortDate: '20130524',
    region: 'us-east-1',
    service: 's3',
    signedHeaders: ['content-encoding', 'content-length', 'host', 'x-amz-content-sha256', 'x-amz-date', 'x-amz-decoded-content-length', 'x-amz-storage-class'],
  };
  const headers = {
    'content-encoding': 'aws-chunked',
    'content-length': '66824',
    host: 's3.amazonaws.com',
    'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    'x-amz-date': '20130524T000000Z',
    'x-amz-decoded-content-length': '66560',
    'x-amz-storage-class': 'REDUCED_REDUNDANCY',
    'user-agent': 'agent/1.0',
  };

  it('reproduces the seed signature of the AWS streaming example', async () => {
    const r = await resignHeaders({ method: 'PUT', host: 's3.amazonaws.com', target: '/examplebucket/chunkObject.txt', headers, auth, creds: CREDS, date: DATE, body: null });
    assert.equal(r.signature, SEED);
    assert.equal(r.scope, SCOPE);
    assert.match(
      r.authorization,
      /^AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE\/20130524\/us-east-1\/s3\/aws4_request, SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class, Signature=/,
    );
  });

  it('re-chains every chunk signature of the example from the new seed, whatever the agent signed', async () => {
    const key = signingKey(CREDS.secretAccessKey, '20130524', 'us-east-1', 's3');
    assert.equal(chunkSignature(key, '20130524T000000Z', SCOPE, SEED, Buffer.alloc(65536, 'a')), CHUNK1);
    const fake = 'f'.repeat(64);
    const framed = Buffer.concat([
      Buffer.from(`10000;chunk-signature=${fake}\r\n`),
      Buffer.alloc(65536, 'a'),
      Buffer.from(`\r\n400;chunk-signature=${fake}\r\n`),
      Buffer.alloc(1024, 'a'),
      Buffer.from(`\r\n0;chunk-signature=${fake}\r\n\r\n`),
    ]);
    // Split at awkward places: inside a header, inside data, inside a CRLF; and in pieces of 1, 2,
    // 1,000 and 65,538 bytes (the resigner collects a chunk's pieces without joining them until the
    // chunk is whole: every boundary must land the same).
    const at = (n: number): Buffer[] => Array.from({ length: Math.ceil(framed.length / n) }, (_, i) => framed.subarray(i * n, (i + 1) * n));
    const splits = [[framed.subarray(0, 7), framed.subarray(7, 40000), framed.subarray(40000, 65620), framed.subarray(65620)], at(1), at(2), at(1000), at(65538)];
    for (const pieces of splits) {
      const out: Buffer[] = [];
      for await (const c of Readable.from(pieces).pipe(chunkResigner({ key, longDate: '20130524T000000Z', scope: SCOPE, seed: SEED }))) out.push(c as Buffer);
      const text = Buffer.concat(out).toString('latin1');
      assert.equal(Buffer.concat(out).length, framed.length, 'the framed length is unchanged');
      assert.equal(text.replace(/chunk-signature=[0-9a-f]{64}/g, ''), framed.toString('latin1').replace(/chunk-signature=[0-9a-f]{64}/g, ''), 'only the signatures change');
      assert.deepEqual(
        [...text.matchAll(/chunk-signature=([0-9a-f]{64})/g)].map((m) => m[1]),
        [CHUNK1, CHUNK2, FINAL],
      );
    }
  });

  it('refuses trailers and malformed chunk framing', async () => {
    const key = signingKey('k', '20130524', 'us-east-1', 's3');
    for (const bad of [
      `10;chunk-signature=${'a'.repeat(64)}\r\n${'x'.repeat(15)}`,
      '10;chunk-signature=zz\r\n',
      `0;chunk-signature=${'a'.repeat(64)}\r\n\r\nx-amz-checksum-crc32:AAAA\r\n`,
      `5;chunk-signature=${'a'.repeat(64)}\r\nabcdeXX`,
    ]) {
      await assert.rejects(
        (async () => {
          for await (const _ of Readable.from([Buffer.from(bad)]).pipe(chunkResigner({ key, longDate: '20130524T000000Z', scope: SCOPE, seed: SEED }))) void _;
        })(),
        (e: { code?: string }) => e.code === 'body_encoding_unsupported',
      );
    }
  });

  it('parses agent Authorization headers and presigned URLs, rejecting odd scopes', () => {
    const a = parseAuthorization(`AWS4-HMAC-SHA256 Credential=trt_abc/20240101/eu-west-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`);
    assert.deepEqual(a, { accessKeyId: 'trt_abc', shortDate: '20240101', region: 'eu-west-1', service: 'sts', signedHeaders: ['host', 'x-amz-date'] });
    assert.equal(parseAuthorization(`AWS4-HMAC-SHA256 Credential=trt_abc/2024/eu/s3/aws4_request, SignedHeaders=host, Signature=${'0'.repeat(64)}`), null);
    assert.equal(parseAuthorization(`AWS4-HMAC-SHA256 Credential=trt_abc/20240101/eu/s3/other, SignedHeaders=host, Signature=${'0'.repeat(64)}`), null);
    const p = presignedAuth(
      '/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=trt_abc%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=00',
    );
    assert.equal(p?.auth.accessKeyId, 'trt_abc');
    assert.equal(p?.expires, 300);
    assert.equal(
      presignedAuth('/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=trt_abc%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=9999999'),
      null,
      'an expiry beyond 7 days is refused',
    );
  });
});
