/**
 * The decide and inject stages run synchronously for the common request (pipeline.ts): a keep-alive
 * or pipelined connection then runs one request's whole decision and injection before the next
 * request is even parsed. Attacked through a real turret, real TLS tunnels and raw pipelined
 * requests: every request is still decided on its own state (rules reloaded between two requests
 * on one connection, a handle revoked by a misuse one request earlier in the same write, a refused
 * request between two injected ones), and every exchange ends with exactly one audit record.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { basicAuth, rawConnect } from '../helpers/raw-proxy.js';
import { parseResponses, type WireMessage } from '../helpers/http-wire.js';
import { agentToken, assertNoSecrets, startTurret, turretOutputs, until, waitForLog, type TurretProc } from '../helpers/turret.js';
import { echo, startUpstream, type Upstream } from '../helpers/upstream.js';
import { verifySigV4, type Verdict } from '../helpers/sigv4.js';
import { SignatureV4 } from '@smithy/signature-v4';
import { createHash, createHmac } from 'node:crypto';
import { LOOPBACK, writeRules, type RuleFile } from '../helpers/rules.js';

const API = `fake_api_${randomBytes(18).toString('hex')}`;
const BURN = `fake_burn_${randomBytes(18).toString('hex')}`;
const AWS_ID = `AKIAFAKE${randomBytes(6).toString('hex').toUpperCase()}`;
const AWS_KEY = `fake/aws+${randomBytes(18).toString('base64')}`;
const ENV = { T_API: API, T_BURN: BURN, T_AWS_ID: AWS_ID, T_AWS_KEY: AWS_KEY, TURRET_ADMIN: 'off' };

const rules = (denyGone: boolean): RuleFile => ({
  agents: ['a'],
  secrets: [
    { name: 'api', from: { env: 'T_API' }, hosts: ['echo.turret.test:*'] },
    { name: 'burn', from: { env: 'T_BURN' }, hosts: ['echo.turret.test:*'], on_misuse: 'revoke' },
    { name: 'aws', from: { env: 'T_AWS_KEY' }, hosts: ['echo.turret.test:*'], aws: { access_key_id: { env: 'T_AWS_ID' } } },
  ],
  rules: [
    {
      name: 'all',
      methods: ['read', 'write'],
      hosts: ['echo.turret.test:*', 'other.turret.test:*', '127.0.0.1:*'],
      paths: denyGone ? ['/keep/**'] : ['/hold', '/burn*', '/pipe*', '/reload*', '/keep/**', '/host*', '/loc*', '/loc1/**', '/sig*'],
      unsafe_addresses: LOOPBACK,
    },
    { name: 'limited', methods: ['read'], hosts: ['limited.turret.test:*'], unsafe_addresses: LOOPBACK, rate_limit: { requests: 1, per: '1h' } },
  ],
  local: ['echo.turret.test', 'other.turret.test', 'limited.turret.test'],
});

/** An intercepted tunnel to `host`: the TLS socket a client would speak HTTP/1.1 over. */
async function tunnel(t: TurretProc, auth: string, host: string, port: number): Promise<tls.TLSSocket> {
  const { res, socket } = await rawConnect(t.port, `${host}:${port}`, auth);
  assert.equal(res.status, 200, JSON.stringify(res));
  const ca = readFileSync(path.join(t.caDir, 'ca.crt'));
  return new Promise((resolve, reject) => {
    const s = tls.connect({ socket, servername: host, ca }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Write `text` at once, then read until `n` complete responses arrived (or the socket closed). */
function exchange(s: tls.TLSSocket, text: string, n: number): Promise<{ responses: WireMessage[]; raw: string }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const finish = (closed: boolean): void => {
      const r = parseResponses(buf, { closed });
      if (r.problem) return done(new Error(`bad responses: ${r.problem}`));
      if (r.responses.length >= n) return done(null, r.responses);
      if (closed) done(new Error(`connection closed after ${r.responses.length} of ${n} responses: ${buf.toString('latin1').slice(0, 400)}`));
    };
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      finish(false);
    };
    const onClose = (): void => finish(true);
    const done = (e: Error | null, responses?: WireMessage[]): void => {
      s.off('data', onData).off('close', onClose).off('error', onClose);
      if (e) reject(e);
      else resolve({ responses: responses ?? [], raw: buf.toString('latin1') });
    };
    s.on('data', onData).on('close', onClose).on('error', onClose);
    s.write(text);
  });
}

const status = (m: WireMessage | undefined): number => m?.status ?? 0;
const errorCode = (m: WireMessage | undefined): string => m?.headers.find(([k]) => k.toLowerCase() === 'x-turret-error')?.[1] ?? '';

describe('synchronous decide/inject: every request decided on its own', () => {
  let t: TurretProc;
  let up: Upstream;
  let auth: string;
  const seen: string[] = [];
  const verdicts = new Map<string, Verdict>();

  const issue = async (secret: string): Promise<string> => {
    const r = await t.cli(['handle', 'issue', '--agent', 'a', '--secret', secret, '--ttl', '1h']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const get = (host: string, p: string, extra = ''): string => `GET ${p} HTTP/1.1\r\nHost: ${host}:${up.port}\r\n${extra}\r\n`;
  /** The audit records of the request paths starting with `mark`. */
  const records = (mark: string): Array<Record<string, unknown>> => t.audit().filter((r) => r.event === 'request' && String(r.path ?? '').startsWith(mark));

  before(async () => {
    // Requests under /sig are checked against the REAL AWS key, independently of Turret's signing.
    up = await startUpstream({
      handler: (req, res, body) => {
        if (!req.url?.startsWith('/sig')) return echo(req, res, body);
        void verifySigV4(AWS_ID, AWS_KEY, req, body).then((v) => {
          verdicts.set(new URL(req.url ?? '/', 'https://x').pathname, v);
          echo(req, res, body);
        });
      },
    });
    t = await startTurret({ rules: { 'r.yaml': rules(false) }, env: ENV });
    auth = basicAuth('a', await agentToken(t, 'a'));
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    assertNoSecrets([...turretOutputs(t), ['client responses', seen.join('\n')]], { API, BURN, AWS_KEY });
  });

  it('a handle revoked by a misuse is refused to the very next request pipelined in the same write', async () => {
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

  it('a handle goes only to its bound host however the host is spelled; elsewhere one refusal, one record, nothing sent', async () => {
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

  it('rules reloaded between two requests on one keep-alive connection: the second is decided on the new rules', async () => {
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
});

describe('synchronous refusals during a drain', () => {
  let t: TurretProc;
  let up: Upstream;
  let held: ((body: string) => void) | null = null;

  before(async () => {
    up = await startUpstream({
      handler: (req, res) => {
        const send = (body: string): void => void res.writeHead(200, { 'content-length': Buffer.byteLength(body) }).end(body);
        if (req.url === '/hold') held = send;
        else send('ok');
      },
    });
    t = await startTurret({ rules: { 'r.yaml': rules(false) }, env: ENV });
  });

  after(async () => {
    await t?.stop();
    await up?.close();
  });

  it('a request refused at once while draining is still answered Connection: close', async () => {
    const auth = basicAuth('a', await agentToken(t, 'a'));
    const s = await tunnel(t, auth, 'echo.turret.test', up.port);
    const answers = exchange(s, get('/hold'), 2);
    await until(() => held !== null, 'the upstream holding /hold');
    const mark = t.stderr().length;
    t.proc.kill('SIGTERM');
    await waitForLog(t, /"msg":"stopping: draining connections/, mark);
    // A second request on the busy connection, refused by the rules (decided synchronously), while
    // the first is still under way: the drain wants every response from now on to close.
    s.write(get('/denied?during=drain'));
    await until(() => t.audit().some((x) => String(x.path).startsWith('/denied')), 'the refusal recorded');
    held?.('held');
    const r = await answers;
    s.destroy();
    assert.equal(status(r.responses[0]), 200, r.raw);
    assert.equal(status(r.responses[1]), 403, r.raw);
    assert.equal(errorCode(r.responses[1]), 'policy_denied');
    const conn = r.responses[1]?.headers.find(([k]) => k.toLowerCase() === 'connection')?.[1];
    assert.match(conn ?? '', /close/i, `the refusal during the drain must close the connection: ${r.raw}`);
    assert.equal(t.audit().filter((x) => String(x.path).startsWith('/denied')).length, 1);
  });

  function get(p: string): string {
    return `GET ${p} HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\n\r\n`;
  }
});

class Sha256 {
  private h;
  constructor(k?: Uint8Array | string) {
    this.h = k === undefined ? createHash('sha256') : createHmac('sha256', k);
  }
  update(d: Uint8Array | string): void {
    this.h.update(d);
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
  reset(): void {}
}
