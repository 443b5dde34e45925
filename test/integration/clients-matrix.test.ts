/**
 * The client matrix: real clients started by `turret run` from a caller environment whose trust
 * and proxy presets are all wrong (helpers/turret-run.ts), with no flag or option telling them
 * about Turret: curl, wget, git, Python (urllib, requests, httpx, aiohttp with trust_env) and
 * Node (global fetch, undici, node:https and node:http through the preload; axios, got). Each
 * sends a handle; the upstream must receive the real secret, and no output, audit record or log
 * may ever contain it. A passthrough host verifies against the bundle's other roots.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startGitServer, type GitServer } from '../helpers/git-server.js';
import { assertNoSecrets, ROOT, startTurret, turretOutputs, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { turretRunner } from '../helpers/turret-run.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const API = `fake_api_${randomBytes(18).toString('hex')}`;
const GIT = `fake_git_${randomBytes(18).toString('hex')}`;
const ENV = { TEST_API_TOKEN: API, TEST_GIT_TOKEN: GIT, TURRET_ADMIN: 'off' };

const rules = (): RuleFile => ({
  agents: ['runner'],
  secrets: [
    { name: 'api-token', from: { env: 'TEST_API_TOKEN' }, hosts: ['echo.turret.test:*', 'plain.turret.test:*'], headers: ['x-api-key'], env: 'API_TOKEN' },
    { name: 'git-token', from: { env: 'TEST_GIT_TOKEN' }, hosts: ['git.turret.test:*'], env: 'GIT_TOKEN' },
  ],
  rules: [
    {
      name: 'test-hosts',
      methods: ['read', 'write'],
      hosts: ['echo.turret.test:*', 'git.turret.test:*', 'plain.turret.test:*'],
      schemes: ['https', 'http'],
      unsafe_addresses: LOOPBACK,
    },
    { name: 'pinned', methods: ['any'], hosts: ['pinned.turret.test:*'], passthrough: true, unsafe_addresses: LOOPBACK },
  ],
  local: ['echo.turret.test', 'git.turret.test', 'plain.turret.test', 'pinned.turret.test'],
});

const PY = `
import asyncio, json, os, sys
which, url = sys.argv[1], sys.argv[2]
headers = {"Authorization": "Bearer " + os.environ["API_TOKEN"]}
if which == "urllib":
    import urllib.request
    print(urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=20).read().decode())
elif which == "requests":
    import requests
    r = requests.get(url, headers=headers, timeout=20); r.raise_for_status(); print(r.text)
elif which == "httpx":
    import httpx
    r = httpx.get(url, headers=headers, timeout=20); r.raise_for_status(); print(r.text)
elif which == "aiohttp":
    import aiohttp
    async def main():
        async with aiohttp.ClientSession(trust_env=True) as s:
            async with s.get(url, headers=headers) as r:
                r.raise_for_status(); print(await r.text())
    asyncio.run(main())
`;

// No proxy or CA code: the preload (NODE_OPTIONS) and the environment do everything.
const NODE = `
import http from 'node:http';
import https from 'node:https';
const [which, url] = process.argv.slice(2);
// A handle never travels over plain HTTP (handle_plain_http): the http case sends none.
const headers = which === 'http' ? {} : { authorization: 'Bearer ' + process.env.API_TOKEN };
const viaModule = (mod) => new Promise((resolve, reject) => {
  mod.get(url, { headers }, (res) => { let b = ''; res.on('data', (c) => (b += c)); res.on('end', () => resolve(res.statusCode + ' ' + b)); }).on('error', reject);
});
let out;
if (which === 'fetch') { const r = await fetch(url, { headers }); out = r.status + ' ' + await r.text(); }
if (which === 'undici') { const { request } = await import(${JSON.stringify(path.join(ROOT, 'node_modules/undici/index.js'))}); const r = await request(url, { headers }); out = r.statusCode + ' ' + await r.body.text(); }
if (which === 'https') out = await viaModule(https);
if (which === 'http') out = await viaModule(http);
if (which === 'axios') { const { default: axios } = await import(${JSON.stringify(path.join(ROOT, 'node_modules/axios/index.js'))}); const r = await axios.get(url, { headers, responseType: 'text' }); out = r.status + ' ' + r.data; }
if (which === 'got') { const { default: got } = await import(${JSON.stringify(path.join(ROOT, 'node_modules/got/dist/source/index.js'))}); const r = await got(url, { headers }); out = r.statusCode + ' ' + r.body; }
console.log(out);
`;

// Trust and proxy host come from JAVA_TOOL_OPTIONS; Java reads no proxy variables, so the program
// supplies the proxy credential (from HTTPS_PROXY) to an Authenticator, as docs/clients.md says.
const JAVA = `
import java.net.*;
import java.net.http.*;
import java.nio.charset.StandardCharsets;
public class Client {
  public static void main(String[] args) throws Exception {
    String[] cred = URI.create(System.getenv("HTTPS_PROXY")).getRawUserInfo().split(":", 2);
    String user = URLDecoder.decode(cred[0], StandardCharsets.UTF_8), pass = URLDecoder.decode(cred[1], StandardCharsets.UTF_8);
    HttpClient c = HttpClient.newBuilder().proxy(ProxySelector.getDefault()).authenticator(new Authenticator() {
      protected PasswordAuthentication getPasswordAuthentication() {
        return getRequestorType() == RequestorType.PROXY ? new PasswordAuthentication(user, pass.toCharArray()) : null;
      }
    }).build();
    // With an Authenticator set, HttpClient drops a user-set Authorization header: an API-key header instead.
    HttpRequest r = HttpRequest.newBuilder(URI.create(args[0])).header("X-Api-Key", System.getenv("API_TOKEN")).build();
    HttpResponse<String> res = c.send(r, HttpResponse.BodyHandlers.ofString());
    System.out.println(res.statusCode() + " " + res.body());
  }
}
`;

describe('client matrix through turret run', () => {
  let t: TurretProc;
  let up: Upstream;
  let plain: Upstream;
  let gitServer: GitServer;
  const work = mkdtempSync(path.join(tmpdir(), 'turret-matrix-'));
  const runner = turretRunner(() => t, 'runner', work, ENV);

  before(async () => {
    up = await startUpstream();
    plain = await startUpstream({ tls: false });
    gitServer = await startGitServer({ user: 'x-access-token', password: GIT });
    t = await startTurret({ rules: { 'r.yaml': rules() }, env: ENV, startTimeoutMs: 60_000 });
    writeFileSync(path.join(work, 'client.py'), PY);
    writeFileSync(path.join(work, 'client.mjs'), NODE);
    writeFileSync(path.join(work, 'Client.java'), JAVA);
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    await plain?.close();
    await gitServer?.close();
    assertNoSecrets([['client outputs', runner.outputs.join('\n')], ...turretOutputs(t)], { 'the API secret': API, 'the git secret': GIT });
  });

  /** The upstream got the real secret on `urlPath`, and the client saw the handle instead. */
  const assertInjected = async (server: Upstream, urlPath: string, stdout: string): Promise<void> => {
    const got = server.received.find((x) => x.url === urlPath);
    assert.equal(got?.headers.authorization, `Bearer ${API}`, `the upstream received the real secret on ${urlPath}`);
    assert.match(stdout, /Bearer trt_/, 'the echo the client printed carries the handle, not the secret');
    const rec = await waitForAudit(t, (x) => x.path === urlPath && x.outcome === 'completed', 30_000);
    assert.deepEqual(rec?.secrets, ['api-token']);
  };

  it('curl', async () => {
    const r = await runner.run(['sh', '-c', `curl -sS -H "Authorization: Bearer $API_TOKEN" https://echo.turret.test:${up.port}/curl`]);
    assert.equal(r.code, 0, r.stderr);
    await assertInjected(up, '/curl', r.stdout);
  });

  it('wget (its CA comes from WGETRC, not SSL_CERT_FILE)', async () => {
    const r = await runner.run(['sh', '-c', `wget -q -O - --header "Authorization: Bearer $API_TOKEN" https://echo.turret.test:${up.port}/wget`]);
    assert.equal(r.code, 0, r.stderr);
    await assertInjected(up, '/wget', r.stdout);
  });

  for (const lib of ['urllib', 'requests', 'httpx', 'aiohttp']) {
    it(`Python ${lib}`, async () => {
      const r = await runner.run(['/usr/bin/python3', 'client.py', lib, `https://echo.turret.test:${up.port}/py-${lib}`]);
      assert.equal(r.code, 0, r.stderr);
      await assertInjected(up, `/py-${lib}`, r.stdout);
    });
  }

  for (const lib of ['fetch', 'undici', 'https', 'axios', 'got']) {
    it(`Node ${lib} (no proxy code in the program)`, async () => {
      const r = await runner.run([process.execPath, 'client.mjs', lib, `https://echo.turret.test:${up.port}/node-${lib}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^200 /);
      await assertInjected(up, `/node-${lib}`, r.stdout);
    });
  }

  it('Node http (plain) through the preload: absolute-form request to the proxy', async () => {
    const r = await runner.run([process.execPath, 'client.mjs', 'http', `http://plain.turret.test:${plain.port}/node-plain`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^200 /);
    assert.ok(plain.received.some((x) => x.url === '/node-plain'));
    // plain.turret.test resolves only inside Turret (dns_hosts): the request went through it.
    const rec = await waitForAudit(t, (x) => x.path === '/node-plain' && x.outcome === 'completed', 30_000);
    assert.equal(rec?.agent, 'runner');
    assert.equal(rec?.scheme, 'http');
  });

  it('Java HttpClient: trust store and proxy from JAVA_TOOL_OPTIONS', async () => {
    const r = await runner.run(['java', 'Client.java', `https://echo.turret.test:${up.port}/java`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^200 .*"x-api-key":"trt_/, 'the echo the client printed carries the handle');
    assert.equal(up.received.find((x) => x.url === '/java')?.headers['x-api-key'], API, 'the upstream received the real secret');
    const rec = await waitForAudit(t, (x) => x.path === '/java' && x.outcome === 'completed', 30_000);
    assert.deepEqual(rec?.secrets, ['api-token']);
  });

  it('git clone and push: basic proxy auth from the first CONNECT, no 407 round trip', async () => {
    const before = t.audit().length;
    const url = `https://x-access-token:$GIT_TOKEN@git.turret.test:${gitServer.port}/repo.git`;
    const script = [
      `git clone -q "${url}" clone`,
      'cd clone',
      'git -c user.name=t -c user.email=t@example.invalid commit -q --allow-empty -m via-matrix',
      'git push -q origin HEAD:main',
    ].join(' && ');
    const r = await runner.run(['sh', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(gitServer.auths.includes(`Basic ${Buffer.from(`x-access-token:${GIT}`).toString('base64')}`), 'the git server received the real password');
    await waitForAudit(t, (x) => x.event === 'tunnel_close', 30_000);
    const records = t.audit().slice(before);
    assert.ok(
      records.some((x) => x.outcome === 'completed'),
      'git requests were recorded',
    );
    assert.deepEqual(
      records.filter((x) => String(x.code ?? '').startsWith('proxy_auth')),
      [],
      'no CONNECT went out without the credential',
    );
  });

  it('a passthrough host verifies against the bundle (Turret does not sign it)', async () => {
    const r = await runner.run(['sh', '-c', `curl -sS -o /dev/null -w '%{ssl_verify_result}' https://pinned.turret.test:${up.port}/pinned`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      up.received.some((x) => x.url === '/pinned'),
      'the request reached the real upstream',
    );
    const rec = await waitForAudit(t, (x) => x.event === 'tunnel_open' && String(x.host) === 'pinned.turret.test', 30_000);
    assert.ok(rec, 'the tunnel was recorded');
    assert.equal(r.stdout, '0', 'curl verified the real upstream certificate');
  });
});
