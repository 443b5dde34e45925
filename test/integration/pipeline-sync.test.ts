/**
 * The decide and inject stages run synchronously for the common request (pipeline.ts): a keep-alive
 * or pipelined connection then runs one request's whole decision and injection before the next
 * request is even parsed. Attacked through a real turret, real TLS tunnels and raw pipelined
 * requests: every request is still decided on its own state (rules reloaded between two requests
 * on one connection, a handle revoked by a misuse one request earlier in the same write, a refused
 * request between two injected ones, a rate limit), and every exchange ends with exactly one audit
 * record. Handles on the same path: pipeline-sync-handles.test.ts; the drain: pipeline-sync-drain.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync, gzipSync } from 'node:zlib';
import { until, waitForLog } from '../helpers/turret.js';
import { writeRules } from '../helpers/rules.js';
import { API, errorCode, exchange, rules, status, syncTurret, tunnel } from '../helpers/pipeline-sync.js';

describe('synchronous decide/inject: every request decided on its own', () => {
  const c = syncTurret();

  it('a handle revoked by a misuse is refused to the very next request pipelined in the same write', async () => {
    const { t, up, auth, seen, issue, get, records } = c;
    const h = await issue('burn');
    const s = await tunnel(t, auth, 'echo.turret.test', up.port);
    const before = up.received.length;
    // 1: the handle in the query (no query opt-in): a misuse, which revokes it. 2: the same handle
    // where it would be injected. Both in one write: the second is decided right after the first.
    const r = await exchange(s, get('echo.turret.test', `/burn1?k=${h}`) + get('echo.turret.test', '/burn2', `Authorization: Bearer ${h}\r\n`), 2);
    s.destroy();
    seen.push(r.raw);
    assert.equal(status(r.responses[0]), 403, r.raw);
    assert.equal(errorCode(r.responses[0]), 'handle_location_unsupported');
    assert.equal(status(r.responses[1]), 403, `the revoked handle must not be injected: ${r.raw}`);
    assert.equal(errorCode(r.responses[1]), 'handle_revoked');
    assert.equal(up.received.length, before, 'nothing reached the upstream');
    await until(() => records('/burn').length >= 2, 'two audit records');
    assert.deepEqual(
      records('/burn').map((x) => [x.path, x.code]),
      [
        ['/burn1?k=', 'handle_location_unsupported'],
        ['/burn2', 'handle_revoked'],
      ],
    );
  });

  it('pipelined: an injected request, a refused one and a plain one each get only their own state', async () => {
    const { t, up, auth, seen, issue, get, records } = c;
    const h = await issue('api');
    const s = await tunnel(t, auth, 'echo.turret.test', up.port);
    const before = up.received.length;
    const text =
      get('echo.turret.test', '/pipe1', `Authorization: Bearer ${h}\r\n`) +
      get('echo.turret.test', `/pipe2?k=${h}`) +
      get('echo.turret.test', '/pipe3') +
      get('echo.turret.test', '/pipe4', `Authorization: token ${h}\r\n`);
    const r = await exchange(s, text, 4);
    s.destroy();
    seen.push(r.raw);
    assert.deepEqual(r.responses.map(status), [200, 403, 200, 200], r.raw);
    assert.equal(errorCode(r.responses[1]), 'handle_location_unsupported');
    const got = up.received.slice(before);
    assert.deepEqual(
      got.map((x) => x.url),
      ['/pipe1', '/pipe3', '/pipe4'],
    );
    assert.equal(got[0]?.headers.authorization, `Bearer ${API}`);
    assert.equal(got[1]?.headers.authorization, undefined, 'the plain request carries nothing of the others');
    assert.equal(got[2]?.headers.authorization, `token ${API}`);
    await until(() => records('/pipe').length >= 4, 'four audit records');
    assert.deepEqual(
      // Written as each exchange ends: a refusal before the answered request ahead of it.
      records('/pipe')
        .map((x) => [x.path, x.code ?? null])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [
        ['/pipe1', null],
        ['/pipe2?k=', 'handle_location_unsupported'],
        ['/pipe3', null],
        ['/pipe4', null],
      ],
    );
  });

  it('a rate limit of 1 taken by three requests pipelined in one write: one passes, two are refused', async () => {
    const { t, up, auth, seen, records } = c;
    const s = await tunnel(t, auth, 'limited.turret.test', up.port);
    const before = up.received.length;
    const one = (p: string): string => `GET ${p} HTTP/1.1\r\nHost: limited.turret.test:${up.port}\r\n\r\n`;
    const r = await exchange(s, one('/lim1') + one('/lim2') + one('/lim3'), 3);
    s.destroy();
    seen.push(r.raw);
    assert.deepEqual(r.responses.map(status), [200, 429, 429], r.raw);
    assert.deepEqual(r.responses.map(errorCode), ['', 'rate_limited', 'rate_limited']);
    assert.deepEqual(
      up.received.slice(before).map((x) => x.url),
      ['/lim1'],
    );
    await until(() => records('/lim').length >= 3, 'three audit records');
    assert.deepEqual(
      records('/lim')
        .map((x) => [x.path, x.code ?? null])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [
        ['/lim1', null],
        ['/lim2', 'rate_limited'],
        ['/lim3', 'rate_limited'],
      ],
    );
  });

  it('rules reloaded between two requests on one keep-alive connection: the second is decided on the new rules', async () => {
    const { t, up, auth, seen, get } = c;
    const s = await tunnel(t, auth, 'echo.turret.test', up.port);
    try {
      const r1 = await exchange(s, get('echo.turret.test', '/reload1'), 1);
      assert.equal(status(r1.responses[0]), 200, r1.raw);
      const mark = t.stderr().length;
      writeRules(t.rulesDir, { 'r.yaml': rules(true) });
      t.proc.kill('SIGHUP');
      await waitForLog(t, /"msg":"rules reloaded/, mark);
      const r2 = await exchange(s, get('echo.turret.test', '/reload2') + get('echo.turret.test', '/keep/reload3'), 2);
      seen.push(r1.raw, r2.raw);
      assert.equal(status(r2.responses[0]), 403, r2.raw);
      assert.equal(errorCode(r2.responses[0]), 'policy_denied');
      assert.equal(status(r2.responses[1]), 200, r2.raw);
      await until(() => t.audit().filter((x) => /reload/.test(String(x.path))).length >= 3, 'three audit records');
      assert.deepEqual(
        t
          .audit()
          .filter((x) => /reload/.test(String(x.path)))
          .map((x) => [x.path, x.code ?? null]),
        [
          ['/reload1', null],
          ['/reload2', 'policy_denied'],
          ['/keep/reload3', null],
        ],
      );
    } finally {
      s.destroy();
      writeRules(t.rulesDir, { 'r.yaml': rules(false) });
      const mark = t.stderr().length;
      t.proc.kill('SIGHUP');
      await waitForLog(t, /"msg":"rules reloaded/, mark);
    }
  });

  it('compressed bodies (read before forwarding) pipelined with identity ones: each checked on its own', async () => {
    const { t, up, auth, seen, records } = c;
    const host = `echo.turret.test:${up.port}`;
    const post = (p: string, coding: string, body: Buffer): Buffer =>
      Buffer.concat([Buffer.from(`POST ${p} HTTP/1.1\r\nHost: ${host}\r\nContent-Encoding: ${coding}\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
    const clean = gzipSync('{"note":"clean"}');
    const before = up.received.length;
    const s = await tunnel(t, auth, 'echo.turret.test', up.port);
    const r = await exchange(
      s,
      Buffer.concat([
        post('/gz1', 'gzip', clean),
        post('/gz2', 'GZIP', gzipSync(`{"key":"${API}"}`)),
        Buffer.from(`GET /gz3 HTTP/1.1\r\nHost: ${host}\r\n\r\n`),
        post('/gz4', 'deflate', deflateSync(`k=${API}`)),
        post('/gz5', 'identity', Buffer.from('plain')),
      ]),
      5,
    );
    s.destroy();
    seen.push(r.raw);
    assert.deepEqual(r.responses.map(status), [200, 403, 200, 403, 200], r.raw);
    assert.deepEqual(r.responses.map(errorCode), ['', 'secret_in_request', '', 'secret_in_request', '']);
    // The upstream may see them in another order (the gzip body is read first); the client not.
    const got = new Map(up.received.slice(before).map((x) => [x.url, x]));
    assert.deepEqual([...got.keys()].sort(), ['/gz1', '/gz3', '/gz5']);
    assert.equal(got.get('/gz5')?.body, 'plain');
    await until(() => records('/gz').length >= 5, 'five audit records');
    assert.deepEqual(
      records('/gz')
        .map((x) => [x.path, x.code ?? null])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [
        ['/gz1', null],
        ['/gz2', 'secret_in_request'],
        ['/gz3', null],
        ['/gz4', 'secret_in_request'],
        ['/gz5', null],
      ],
    );
  });

  it('method overrides pipelined on a read-only host: each decided for the overriding method too', async () => {
    const { t, up, auth, seen, records } = c;
    const host = `ro.turret.test:${up.port}`;
    const get = (p: string, extra = ''): string => `GET ${p} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;
    const before = up.received.length;
    const s = await tunnel(t, auth, 'ro.turret.test', up.port);
    const r = await exchange(
      s,
      get('/ov1?_method=DELETE') +
        get('/ov2', 'X-HTTP-Method-Override: delete\r\n') +
        get('/ov3?%5FMETHOD=put') +
        get('/ov4', 'X-Method: GET\r\n') +
        get('/ov5', 'X-HTTP-Method-Override: DEL ETE\r\n'),
      5,
    );
    s.destroy();
    seen.push(r.raw);
    assert.deepEqual(r.responses.map(status), [403, 403, 403, 200, 400], r.raw);
    assert.deepEqual(r.responses.map(errorCode), ['policy_denied', 'policy_denied', 'policy_denied', '', 'bad_request']);
    assert.deepEqual(
      up.received.slice(before).map((x) => x.url),
      ['/ov4'],
    );
    await until(() => records('/ov').length >= 5, 'five audit records');
    assert.deepEqual(
      records('/ov')
        .map((x) => [String(x.path).split('?')[0], x.code ?? null])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [
        ['/ov1', 'policy_denied'],
        ['/ov2', 'policy_denied'],
        ['/ov3', 'policy_denied'],
        ['/ov4', null],
        ['/ov5', 'bad_request'],
      ],
    );
  });
});
