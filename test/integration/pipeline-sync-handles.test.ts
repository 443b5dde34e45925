/**
 * Handles on the synchronous inject path (pipeline.ts, secrets/request.ts) and the asynchronous
 * one (SigV4 re-signing, presigned URLs) through a real turret and raw pipelined requests: a handle
 * reaches only its bound host however the host is spelled, is refused wherever it may not go with
 * one record and nothing sent, and signed requests pipelined with plain ones are each re-signed
 * or injected on their own.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SignatureV4 } from '@smithy/signature-v4';
import type { WireMessage } from '../helpers/http-wire.js';
import { until } from '../helpers/turret.js';
import { API, errorCode, exchange, Sha256, status, syncTurret, tunnel } from '../helpers/pipeline-sync.js';

describe('synchronous inject: handles', () => {
  const c = syncTurret();

  it('a handle goes only to its bound host however the host is spelled; elsewhere one refusal, one record, nothing sent', async () => {
    const { t, up, auth, seen, issue, records } = c;
    const h = await issue('api');
    const send = async (connectHost: string, hostHeader: string, p: string): Promise<{ m: WireMessage | undefined; got: typeof up.received }> => {
      const before = up.received.length;
      const s = await tunnel(t, auth, connectHost, up.port);
      const r = await exchange(s, `GET ${p} HTTP/1.1\r\nHost: ${hostHeader}:${up.port}\r\nAuthorization: Bearer ${h}\r\n\r\n`, 1);
      s.destroy();
      seen.push(r.raw);
      return { m: r.responses[0], got: up.received.slice(before) };
    };
    // The same host, spelled in letter case and with the root dot: injected.
    for (const [i, host] of ['ECHO.TURRET.TEST', 'echo.turret.test.', 'Echo.Turret.Test.'].entries()) {
      const { m, got } = await send(host, host, `/host-same${i}`);
      assert.equal(status(m), 200, host);
      assert.deepEqual(
        got.map((x) => x.headers.authorization),
        [`Bearer ${API}`],
        host,
      );
    }
    // Another host (name or IP literal), or a Host header naming the bound host inside a tunnel to
    // another: refused, nothing reaches the upstream, exactly one record with the cause.
    const cases: Array<[string, string, string]> = [
      ['other.turret.test', 'other.turret.test', 'handle_host_not_bound'],
      ['127.0.0.1', '127.0.0.1', 'handle_host_not_bound'],
      ['OTHER.turret.test.', 'OTHER.turret.test.', 'handle_host_not_bound'],
    ];
    for (const [i, [connectHost, hostHeader, code]] of cases.entries()) {
      const { m, got } = await send(connectHost, hostHeader, `/host-else${i}`);
      assert.equal(status(m), 403, connectHost);
      assert.equal(errorCode(m), code, connectHost);
      assert.equal(got.length, 0, `nothing sent toward ${connectHost}`);
    }
    const mismatch = await send('other.turret.test', 'echo.turret.test', '/host-else9');
    assert.equal(status(mismatch.m), 421, 'a Host header naming the bound host does not move the handle');
    assert.equal(errorCode(mismatch.m), 'misdirected_request');
    assert.equal(mismatch.got.length, 0);
    await until(
      () => records('/host-else').length >= 3 && t.audit().some((x) => x.code === 'misdirected_request'),
      () => JSON.stringify(t.audit().slice(-4)),
    );
    assert.deepEqual(
      records('/host-else').map((x) => [x.path, x.code]),
      [
        ['/host-else0', 'handle_host_not_bound'],
        ['/host-else1', 'handle_host_not_bound'],
        ['/host-else2', 'handle_host_not_bound'],
      ],
    );
    assert.equal(t.audit().filter((x) => x.event === 'request' && x.code === 'misdirected_request').length, 1);
  });

  it('a handle where it may not go (path, body, chunked body, cookie, encoded): refused with one record, nothing sent', async () => {
    const { t, up, auth, seen, issue, records } = c;
    const h = await issue('api');
    const b64 = Buffer.from(h).toString('base64');
    const pct = encodeURIComponent(h).replace(/_/g, '%5F');
    const cases: Array<[string, string]> = [
      ['path', `GET /loc1/${h} HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\n\r\n`],
      ['body', `POST /loc2 HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\nContent-Length: ${h.length + 6}\r\n\r\nkey=${h}&x`],
      ['b64 header', `GET /loc3 HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\nAuthorization: Basic ${b64}\r\n\r\n`],
      ['pct query', `GET /loc4?x=${pct} HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\n\r\n`],
      ['cookie', `GET /loc5 HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\nCookie: s=${h}\r\n\r\n`],
      ['chunked body', `POST /loc6 HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\nTransfer-Encoding: chunked\r\n\r\n${h.length.toString(16)}\r\n${h}\r\n0\r\n\r\n`],
    ];
    for (const [i, [what, text]] of cases.entries()) {
      const before = up.received.length;
      const s = await tunnel(t, auth, 'echo.turret.test', up.port);
      const r = await exchange(s, text, 1);
      s.destroy();
      seen.push(r.raw);
      assert.equal(status(r.responses[0]), 403, `${what}: ${r.raw}`);
      assert.equal(errorCode(r.responses[0]), 'handle_location_unsupported', what);
      assert.equal(up.received.length, before, `${what}: nothing reached the upstream`);
      await until(() => records(`/loc${i + 1}`).length >= 1, `the record of ${what}`);
    }
    assert.deepEqual(
      records('/loc').map((x) => x.code),
      cases.map(() => 'handle_location_unsupported'),
      'exactly one record per refused request',
    );
  });

  it('SigV4-signed and presigned requests (the asynchronous inject path) pipelined with synchronous ones: each re-signed or injected on its own', async () => {
    const { t, up, auth, seen, verdicts, issue, records } = c;
    const hAws = await issue('aws');
    const hApi = await issue('api');
    const host = `echo.turret.test:${up.port}`;
    const signer = new SignatureV4({
      credentials: { accessKeyId: hAws, secretAccessKey: hAws },
      region: 'us-east-1',
      service: 's3',
      sha256: Sha256 as never,
      uriEscapePath: false,
    });
    const signed = await signer.sign({
      method: 'GET',
      protocol: 'https:',
      hostname: host,
      path: '/sig1',
      query: {},
      headers: { host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
    });
    const pre = await signer.presign({ method: 'GET', protocol: 'https:', hostname: host, path: '/sig3', query: {}, headers: { host } }, { expiresIn: 300 });
    const qs = Object.entries(pre.query ?? {})
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
      .join('&');
    const head = (h: Record<string, string>): string =>
      Object.entries(h)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
    const text =
      `GET /sig1 HTTP/1.1\r\n${head(signed.headers)}\r\n` +
      `GET /sig2 HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${hApi}\r\n\r\n` +
      `GET /sig3?${qs} HTTP/1.1\r\nHost: ${host}\r\n\r\n` +
      `GET /sig4 HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    const before = up.received.length;
    const s = await tunnel(t, auth, 'echo.turret.test', up.port);
    const r = await exchange(s, text, 4);
    s.destroy();
    seen.push(r.raw);
    assert.deepEqual(r.responses.map(status), [200, 200, 200, 200], r.raw);
    assert.equal(verdicts.get('/sig1')?.ok, true, JSON.stringify(verdicts.get('/sig1')));
    assert.equal(verdicts.get('/sig3')?.ok, true, JSON.stringify(verdicts.get('/sig3')));
    const byUrl = new Map(up.received.slice(before).map((x) => [new URL(x.url, 'https://x').pathname, x]));
    assert.equal(byUrl.get('/sig2')?.headers.authorization, `Bearer ${API}`);
    assert.equal(byUrl.get('/sig4')?.headers.authorization, undefined);
    assert.equal(byUrl.size, 4);
    for (const x of up.received.slice(before)) assert.ok(!JSON.stringify(x).includes('trt_'), `no handle reached the upstream: ${x.url}`);
    await until(() => records('/sig').length >= 4, 'four audit records');
    assert.deepEqual(
      records('/sig')
        .map((x) => [String(x.path).split('?')[0], x.code ?? null])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [
        ['/sig1', null],
        ['/sig2', null],
        ['/sig3', null],
        ['/sig4', null],
      ],
    );
  });

  it('a client gone while the inject stage waits (SigV4 body read, compressed body read): one record, nothing sent', async () => {
    const { t, up, auth, issue, records } = c;
    const hAws = await issue('aws');
    const host = `echo.turret.test:${up.port}`;
    // A non-S3 service without x-amz-content-sha256: Turret reads the whole body to hash it.
    const signer = new SignatureV4({ credentials: { accessKeyId: hAws, secretAccessKey: hAws }, region: 'us-east-1', service: 'execute-api', sha256: Sha256 as never });
    const signed = await signer.sign({
      method: 'PUT',
      protocol: 'https:',
      hostname: host,
      path: '/abort-sig',
      query: {},
      headers: { host, 'content-length': '1000' },
      body: 'x'.repeat(1000),
    });
    const heads: Array<[string, string]> = [
      [
        '/abort-sig',
        `PUT /abort-sig HTTP/1.1\r\n${Object.entries(signed.headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('')}\r\n`,
      ],
      ['/abort-gz', `POST /abort-gz HTTP/1.1\r\nHost: ${host}\r\nContent-Encoding: gzip\r\nContent-Length: 1000\r\n\r\n`],
    ];
    const before = up.received.length;
    for (const [p, head] of heads) {
      const s = await tunnel(t, auth, 'echo.turret.test', up.port);
      // Handed to the kernel: TCP delivers the head and 10 body bytes before the close that follows.
      await new Promise<void>((resolve) => s.write(head + 'x'.repeat(10), () => resolve()));
      s.destroy();
      await until(() => records(p).length >= 1, `the record of ${p}`);
    }
    assert.equal(up.received.length, before, 'nothing reached the upstream');
    for (const [p] of heads) {
      const recs = records(p);
      assert.equal(recs.length, 1, `exactly one record for ${p}`);
      assert.equal(recs[0]?.code, 'client_closed', JSON.stringify(recs[0]));
    }
    // Still serving.
    const s = await tunnel(t, auth, 'echo.turret.test', up.port);
    const r = await exchange(s, `GET /abort-after HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 1);
    s.destroy();
    assert.equal(status(r.responses[0]), 200);
  });
});
