/**
 * Container networks, for real: an agent in its own network namespace whose only way out is
 * Turret. nftables in the root namespace redirects its tcp 80/443 to Turret's transparent
 * listener and drops everything else (test/helpers/netns.ts). curl runs INSIDE the namespace.
 *
 * The "internet" the agent dials is 203.0.113.10 (TEST-NET-3): the packets never leave the
 * machine, they are redirected in the root namespace's prerouting hook. Turret resolves
 * echo.turret.test itself (dns_hosts) to an upstream on a random 127.x.y.z address, so the
 * address the agent dialled never chooses where Turret connects.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { createAgentNet, curlIn, leftovers, rawIn, requireNetTools, run, type AgentNet } from '../helpers/netns.js';
import { agentToken, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { FIXTURES, type Received } from '../helpers/upstream.js';

const SECRET = `fake_netns_${randomBytes(18).toString('hex')}`;
const WORLD = '203.0.113.10';
const UPSTREAM = `127.${randomInt(2, 250)}.${randomInt(1, 250)}.${randomInt(2, 250)}`;

interface Fixed {
  received: Received[];
  close(): Promise<void>;
}

/** Echo upstream on UPSTREAM:port (443 or 80: transparent mode knows no other ports). */
async function fixedUpstream(port: 80 | 443): Promise<Fixed> {
  const received: Received[] = [];
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const out = JSON.stringify({ url: req.url, headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json', 'x-echo-auth': String(req.headers.authorization ?? '') });
      res.end(out);
    });
  };
  const server =
    port === 443
      ? https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, onRequest)
      : http.createServer(onRequest);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, UPSTREAM, () => resolve());
  });
  return { received, close: () => new Promise<void>((r) => server.close(() => r()).closeAllConnections()) };
}

describe('container network: transparent redirection and source identity (netns + nftables)', () => {
  let n: AgentNet | undefined;
  let t: TurretProc | undefined;
  let tls443: Fixed | undefined;
  let plain80: Fixed | undefined;
  let bystander: net.Server | undefined;
  let bystanderHits = 0;
  let bystanderPort = 0;
  let tport = 0;
  let caFile = '';
  let otherToken = '';
  const seen: string[] = [];

  before(async () => {
    requireNetTools();
    n = await createAgentNet();
    tls443 = await fixedUpstream(443);
    plain80 = await fixedUpstream(80);
    // A service on the host the agent must not reach directly (the firewall drops it).
    bystander = net.createServer((s) => {
      bystanderHits++;
      s.destroy();
    });
    await new Promise<void>((r) => bystander!.listen(0, n!.hostAddr, () => r()));
    bystanderPort = (bystander.address() as net.AddressInfo).port;
    t = await startTurret({
      rules: {
        'agents.yaml': {
          agents: [{ name: 'builder', sources: [`${n.agentAddr}/32`] }, 'other'],
          secrets: [{ name: 'echo-token', from: { env: 'TEST_NETNS_TOKEN' }, hosts: ['echo.turret.test:*'] }],
          rules: [{ name: 'echo', methods: ['read', 'POST'], hosts: ['echo.turret.test:*'], unsafe_addresses: [`${UPSTREAM}/32`] }],
          local: { 'echo.turret.test': UPSTREAM, 'denied.turret.test': UPSTREAM },
        },
      },
      env: { TEST_NETNS_TOKEN: SECRET },
      args: ['--listen', `${n.hostAddr}:0`, '--transparent', `${n.hostAddr}:0`],
    });
    const m = /"transparent":"[^"]*:(\d+)"/.exec(t.stderr());
    tport = Number(m?.[1]);
    assert.ok(tport > 0, `turret logs its transparent listener: ${t.stderr()}`);
    await n.confine({ transparentPort: tport, proxyPort: t.port });
    caFile = path.join(t.caDir, 'ca.crt');
    otherToken = await agentToken(t, 'other');
    assert.ok(otherToken, 'turret env prints the credential of agent other');
  });

  after(async () => {
    await t?.stop();
    // The drain closes the transparent listener and its connections too (no SIGKILL needed).
    if (t) assert.match(t.stderr(), /"msg":"stopped"/, 'turret drained and stopped on SIGTERM');
    await tls443?.close();
    await plain80?.close();
    await new Promise<void>((r) => (bystander ? bystander.close(() => r()) : r()));
    if (n) {
      await n.teardown();
      assert.deepEqual(await leftovers(n), [], 'the namespace, veth and nftables table are gone');
    }
    for (const text of [...seen, t?.stdout() ?? '', t?.stderr() ?? '', t?.auditText() ?? '']) assert.ok(!text.includes(SECRET), 'no output ever contains the secret');
  });

  const curl = async (args: string[]) => {
    const r = await curlIn(n!, args);
    seen.push(r.raw, r.stderr);
    return r;
  };
  const handle = async (): Promise<string> => {
    const r = await t!.cli(['handle', 'issue', '--agent', 'builder', '--secret', 'echo-token', '--ttl', '10m']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  it('redirected HTTPS reaches the upstream through Turret: source identity, handle injected, response scrubbed', async () => {
    const h = await handle();
    const r = await curl(['--cacert', caFile, '--resolve', `echo.turret.test:443:${WORLD}`, '-H', `Authorization: Bearer ${h}`, 'https://echo.turret.test/transparent?q=1']);
    assert.equal(r.status, 200, r.raw + r.stderr);
    const got = tls443!.received.at(-1);
    assert.equal(got?.url, '/transparent?q=1');
    assert.equal(got?.headers.authorization, `Bearer ${SECRET}`, 'the upstream received the real secret');
    assert.equal(r.headers['x-echo-auth'], `Bearer ${h}`, 'the echoed secret came back as the handle');
    assert.ok(!r.raw.includes(SECRET));
    const open = await waitForAudit(
      t!,
      (x) => x.event === 'tunnel_open' && x.outcome === 'allowed' && x.host === 'echo.turret.test' && String(x.client).startsWith(`${n!.agentAddr}:`),
    );
    assert.equal(open?.agent, 'builder', 'the agent was identified by its source address');
    assert.equal(open?.port, 443);
    const rec = await waitForAudit(t!, (x) => x.event === 'request' && x.path === '/transparent?q=');
    assert.equal(rec?.agent, 'builder');
    assert.deepEqual(rec?.secrets, ['echo-token']);
  });

  it('redirected plain HTTP is decided by its Host header; a Proxy-Authorization header cannot change the agent', async () => {
    const other = `Basic ${Buffer.from(`other:${otherToken}`).toString('base64')}`;
    const r = await curl(['--resolve', `echo.turret.test:80:${WORLD}`, '-H', `Proxy-Authorization: ${other}`, 'http://echo.turret.test/plain']);
    assert.equal(r.status, 200, r.raw + r.stderr);
    assert.equal(plain80!.received.at(-1)?.url, '/plain');
    assert.equal(plain80!.received.at(-1)?.headers['proxy-authorization'], undefined);
    const rec = await waitForAudit(t!, (x) => x.event === 'request' && x.path === '/plain');
    assert.equal(rec?.agent, 'builder', 'identity in transparent mode is the source address only');
    assert.equal(rec?.scheme, 'http');
    assert.equal(rec?.port, 80);
  });

  it('a host no rule allows is refused with 403 inside TLS, and nothing reaches the upstream', async () => {
    const before = tls443!.received.length;
    const r = await curl(['--cacert', caFile, '--resolve', `denied.turret.test:443:${WORLD}`, 'https://denied.turret.test/x']);
    assert.equal(r.status, 403, r.raw + r.stderr);
    assert.equal(r.headers['x-turret-error'], 'policy_denied');
    assert.equal(tls443!.received.length, before);
    const rec = await waitForAudit(t!, (x) => x.event === 'tunnel_open' && x.outcome === 'denied' && x.host === 'denied.turret.test');
    assert.equal(rec?.agent, 'builder');
    assert.equal(rec?.code, 'policy_denied');
  });

  it('a Host header that disagrees with the SNI is refused (421): the SNI chose the tunnel', async () => {
    const before = tls443!.received.length;
    const r = await curl(['--cacert', caFile, '--resolve', `echo.turret.test:443:${WORLD}`, '-H', 'Host: denied.turret.test', 'https://echo.turret.test/smuggle']);
    assert.equal(r.status, 421, r.raw + r.stderr);
    assert.equal(r.headers['x-turret-error'], 'misdirected_request');
    assert.equal(tls443!.received.length, before);
  });

  it('a TLS connection without SNI (the agent dialled an address) is closed, never guessed', async () => {
    const r = await curl(['-k', `https://${WORLD}/`]);
    assert.notEqual(r.code, 0, 'curl fails');
    assert.equal(r.status, 0);
    const rec = await waitForAudit(t!, (x) => x.event === 'tunnel_open' && x.code === 'bad_target' && String(x.client).startsWith(`${n!.agentAddr}:`));
    assert.ok(rec, 'the refusal is audited');
  });

  it('hostile plain HTTP on the redirected port: two Host headers (400), a Host naming another port (421), CONNECT (403)', async () => {
    const two = await rawIn(n!, WORLD, 80, 'GET / HTTP/1.1\r\nHost: echo.turret.test\r\nHost: denied.turret.test\r\n\r\n');
    assert.match(two, /^HTTP\/1\.1 400 /, two);
    const port = await rawIn(n!, WORLD, 80, 'GET / HTTP/1.1\r\nHost: echo.turret.test:8443\r\nConnection: close\r\n\r\n');
    assert.match(port, /^HTTP\/1\.1 421 /, port);
    const abs = await rawIn(n!, WORLD, 80, 'GET http://denied.turret.test/ HTTP/1.1\r\nHost: echo.turret.test\r\nConnection: close\r\n\r\n');
    assert.match(abs, /^HTTP\/1\.1 400 /, abs);
    const conn = await rawIn(n!, WORLD, 80, 'CONNECT echo.turret.test:443 HTTP/1.1\r\nHost: echo.turret.test:443\r\n\r\n');
    assert.match(conn, /^HTTP\/1\.1 403 /, conn);
    assert.match(conn, /x-turret-error: method_forbidden/i);
  });

  it('everything else the agent sends is dropped: another port on the host, another port on the "internet"', async () => {
    const direct = await curl(['--connect-timeout', '2', `http://${n!.hostAddr}:${bystanderPort}/`]);
    // 28 = timed out: the SYN was dropped, not refused, so the agent learns nothing about the port.
    assert.equal(direct.code, 28, `curl cannot reach a host service directly: ${direct.stderr}`);
    const world = await curl(['--connect-timeout', '2', `http://${WORLD}:8080/`]);
    assert.equal(world.code, 28, `curl cannot reach a non-redirected port: ${world.stderr}`);
    assert.equal(bystanderHits, 0, 'the host service never saw a connection');
  });

  it("a forged source address outside the agents' range is dropped before Turret sees it (anti-spoofing)", async () => {
    const forged = `10.235.${randomInt(0, 256)}.9`;
    const add = await n!.exec('ip', ['addr', 'add', `${forged}/32`, 'dev', n!.nsIf]);
    assert.equal(add.code, 0, add.stderr);
    // Should the rule ever regress, replies still go back into the namespace, never out of the machine.
    const route = await run('ip', ['route', 'add', `${forged}/32`, 'dev', n!.hostIf]);
    assert.equal(route.code, 0, route.stderr);
    const r = await curl(['--connect-timeout', '2', '--interface', forged, '--resolve', `echo.turret.test:80:${WORLD}`, 'http://echo.turret.test/forged']);
    assert.equal(r.code, 28, `dropped: ${r.stderr}`);
    assert.equal(await waitForAudit(t!, (x) => String(x.client ?? '').startsWith(`${forged}:`), 300), undefined, 'Turret never saw it');
  });

  it('the explicit proxy identifies the agent by source address; a wrong credential is 407, never a fallback', async () => {
    const proxy = `http://${n!.hostAddr}:${t!.port}`;
    const r = await curl(['-x', proxy, '--cacert', caFile, 'https://echo.turret.test/explicit']);
    assert.equal(r.status, 200, r.raw + r.stderr);
    assert.equal(tls443!.received.at(-1)?.url, '/explicit');
    const rec = await waitForAudit(t!, (x) => x.event === 'request' && x.path === '/explicit');
    assert.equal(rec?.agent, 'builder');
    const wrong = await curl(['-x', proxy, '--proxy-user', 'builder:not-the-token', '--cacert', caFile, 'https://echo.turret.test/wrong']);
    assert.equal(wrong.status, 407, wrong.raw);
    assert.equal(wrong.headers['x-turret-error'], 'proxy_auth_invalid');
    const plain = await curl(['-x', proxy, 'http://echo.turret.test/explicit-plain']);
    assert.equal(plain.status, 200, plain.raw);
    assert.equal((await waitForAudit(t!, (x) => x.event === 'request' && x.path === '/explicit-plain'))?.agent, 'builder');
  });

  it('a client outside every sources: range gets 407 without a credential', async () => {
    // From the root namespace, whose address on the veth is not the agent's.
    const r = await new Promise<string>((resolve) => {
      const s = net.connect({ host: n!.hostAddr, port: t!.port, localAddress: n!.hostAddr }, () =>
        s.write('GET http://echo.turret.test/ HTTP/1.1\r\nHost: echo.turret.test\r\nConnection: close\r\n\r\n'),
      );
      let out = '';
      s.on('data', (c: Buffer) => (out += c.toString()));
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
    });
    assert.match(r, /^HTTP\/1\.1 407 /, r);
    assert.match(r, /x-turret-error: proxy_auth_required/i);
  });
});
