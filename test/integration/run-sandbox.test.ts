/**
 * `turret run` isolation (issue #14, docs/security.md), with real processes as root: the command
 * runs as nobody in its own namespaces; Turret's key files, rules, audit log and process are out
 * of reach; its environment holds no secret and no other agent's credential; nothing but Turret
 * leads out — not a loopback service, not UDP; proxy-aware clients use the proxy over the bridge
 * and clients that ignore the proxy variables reach https://NAME/ on 443 through Turret.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { assertNoSecrets, cleanEnv, MAIN, runArgs, runCli, startTurret, turretOutputs, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { echo, FIXTURES, startUpstream, type Received, type Upstream } from '../helpers/upstream.js';
import { type RuleFile } from '../helpers/rules.js';

const SECRET = `fake_sbx_${randomBytes(18).toString('hex')}`;
const OTHER = `tra_other_${randomBytes(18).toString('hex')}`;
// A loopback address of our own for the port-443/80 upstream, so parallel tests never collide.
const ADDR = `127.${randomInt(1, 250)}.${randomInt(1, 250)}.${randomInt(2, 250)}`;
// The machine's own non-loopback address when it has one (else one inside a range the sandbox has no route to).
const HOST_ADDR =
  Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address ?? '10.200.0.1';

const rules = (): RuleFile => ({
  agents: ['runner', { name: 'other', token: { env: 'OTHER_AGENT_TOKEN' } }],
  secrets: [{ name: 'api', from: { env: 'TEST_SANDBOX_SECRET' }, hosts: ['echo.turret.test:*', 'web.turret.test:*'], env: 'API_TOKEN' }],
  rules: [{ name: 'test-hosts', methods: ['read'], hosts: ['echo.turret.test:*', 'web.turret.test:*'], unsafe_addresses: ['127.0.0.1/32', `${ADDR}/32`] }],
  local: { 'echo.turret.test': '127.0.0.1', 'web.turret.test': ADDR },
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('turret run isolates the command', () => {
  let t: TurretProc;
  let up: Upstream;
  const web: Received[] = [];
  const servers: Array<http.Server> = [];
  const outputs: string[] = [];
  const work = mkdtempSync(path.join(tmpdir(), 'turret-sbx-'));
  chmodSync(work, 0o777); // the command runs as nobody and writes here

  const run = (
    cmd: string[],
    o: { extra?: string[]; env?: Record<string, string>; input?: string; onStdout?: (s: string, p: ReturnType<typeof spawn>) => void } = {},
  ): Promise<Run> =>
    new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [MAIN, ...runArgs(t, 'runner', ['--audit', t.auditPath, ...(o.extra ?? [])], cmd)], {
        cwd: work,
        env: cleanEnv({ TEST_SANDBOX_SECRET: SECRET, OTHER_AGENT_TOKEN: OTHER, ...o.env }),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
        o.onStdout?.(stdout, p);
      });
      p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      p.on('error', reject);
      p.on('close', (code) => {
        outputs.push(stdout, stderr);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      p.stdin.end(o.input ?? '');
    });

  before(async () => {
    up = await startUpstream();
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        web.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: body.toString() });
        echo(req, res, body);
      });
    };
    const tlsServer = https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, onRequest);
    const plainServer = http.createServer(onRequest);
    for (const [s, port] of [
      [tlsServer, 443],
      [plainServer, 80],
    ] as const) {
      await new Promise<void>((r) => s.listen(port, ADDR, () => r()));
      servers.push(s);
    }
    t = await startTurret({ rules: { 'r.yaml': rules() }, env: { TEST_SANDBOX_SECRET: SECRET, OTHER_AGENT_TOKEN: OTHER, TURRET_ADMIN: 'off' } });
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    assertNoSecrets([['run outputs', outputs.join('\n')], ...turretOutputs(t)], { 'the secret': SECRET, "the other agent's token": OTHER });
  });

  it('runs the command as nobody, and Turret key files, rules and audit log are out of reach', async () => {
    const key = path.join(t.caDir, 'turret.key');
    const r = await run([
      'sh',
      '-c',
      `id -u; cat ${key} ${path.join(t.caDir, 'ca.key')} >/dev/null 2>&1 && echo READ-KEY; find ${t.caDir} -type f | sort | tr '\\n' ' '; echo; ls -A ${t.rulesDir} | wc -l; touch ${path.join(t.rulesDir, 'evil.yaml')} 2>/dev/null && echo WROTE-RULES; cat ${t.auditPath} 2>/dev/null | wc -c; grep -m1 -- -----BEGIN ${path.join(t.caDir, 'client', 'bundle.pem')}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], '65534', 'the command runs as nobody');
    assert.ok(!r.stdout.includes('READ-KEY'), 'the key files must not be readable');
    const client = path.join(t.caDir, 'client');
    // Only the public client files turret env points at (docs/clients.md) are visible in the CA directory.
    assert.equal(
      lines[1]?.trim(),
      ['bundle.pem', 'truststore.p12', 'wgetrc'].map((f) => path.join(client, f)).join(' '),
      'only the public client files are visible in the CA directory',
    );
    assert.equal(lines[2], '0', 'the rules directory is empty inside');
    assert.ok(!r.stdout.includes('WROTE-RULES'), 'no file can be created in the rules directory');
    assert.equal(lines[3], '0', 'the audit log is empty inside');
    assert.equal(lines[4], '-----BEGIN CERTIFICATE-----');
    assert.ok(!existsSync(path.join(t.rulesDir, 'evil.yaml')));
    assert.deepEqual(readdirSync(t.rulesDir), ['r.yaml']);
  });

  it('cannot signal Turret or read its /proc entries', async () => {
    const pid = t.proc.pid ?? 0;
    const r = await run(['sh', '-c', `kill -TERM ${pid} 2>/dev/null && echo KILLED; cat /proc/${pid}/environ 2>/dev/null | wc -c; ls /proc | grep -c '^[0-9]'`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes('KILLED'));
    const [environ, procs] = r.stdout.trim().split('\n');
    assert.equal(environ, '0');
    assert.ok(Number(procs) <= 6, `only the sandbox's own processes are visible, saw ${procs}`);
    assert.equal(t.proc.exitCode, null, 'Turret is still running');
    assert.equal(t.proc.signalCode, null);
  });

  it('passes an allow-listed environment: no secret, no source variable, no other agent token', async () => {
    const r = await run(['env'], { env: { AWS_SECRET_ACCESS_KEY: 'fake-aws', MY_SETTING: 'kept' }, extra: ['--pass-env', 'MY_SETTING'] });
    assert.equal(r.code, 0, r.stderr);
    for (const bad of [SECRET, OTHER, 'TEST_SANDBOX_SECRET', 'OTHER_AGENT_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'fake-aws'])
      assert.ok(!r.stdout.includes(bad), `the environment must not hold ${bad}`);
    assert.match(r.stdout, /^MY_SETTING=kept$/m);
    assert.match(r.stdout, /^API_TOKEN=trt_/m, 'the handle variable is there');
    assert.match(r.stdout, /^HTTPS_PROXY=http:\/\/runner:/m);
    const refused = await run(['true'], { extra: ['--pass-env', 'OTHER_AGENT_TOKEN'] });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /OTHER_AGENT_TOKEN.*agent "other"'s proxy token/);
  });

  it('gets nowhere over TCP to a loopback service or over UDP to the host', async () => {
    const udp = dgram.createSocket('udp4');
    let udpReceived = 0;
    udp.on('message', () => udpReceived++);
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    const udpPort = udp.address().port;
    const script = `
      const net = require('net'), dgram = require('dgram');
      const tcp = (host, port) => new Promise((r) => net.connect(port, host).on('connect', () => r('connected')).on('error', (e) => r(e.code)));
      (async () => {
        console.log('tcp-loopback', await tcp('127.0.0.1', ${up.port}));
        console.log('tcp-addr', await tcp('${HOST_ADDR}', ${up.port}));
        const s = dgram.createSocket('udp4');
        const sent = (host) => new Promise((r) => s.send('x', ${udpPort}, host, (e) => r(e ? e.code : 'sent')));
        console.log('udp-addr', await sent('${HOST_ADDR}'));
        s.close();
      })();`;
    const r = await run(['node', '-e', script]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^tcp-loopback ECONNREFUSED$/m, 'the host loopback service is not reachable');
    assert.match(r.stdout, /^tcp-addr ENETUNREACH$/m, 'no route to any other address');
    assert.match(r.stdout, /^udp-addr ENETUNREACH$/m);
    // Loopback UDP inside stays inside: the host's socket never hears it (the run has ended).
    const r2 = await run(['/usr/bin/python3', '-c', `import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"x", ("127.0.0.1", ${udpPort})); print("sent")`]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(udpReceived, 0);
    udp.close();
  });

  it('carries curl through the proxy; the upstream receives the injected secret', async () => {
    const r = await run(['sh', '-c', `curl -sS --max-time 20 -H "Authorization: Bearer $API_TOKEN" https://echo.turret.test:${up.port}/via-proxy`]);
    assert.equal(r.code, 0, r.stderr);
    const got = up.received.find((x) => x.url === '/via-proxy');
    assert.equal(got?.headers.authorization, `Bearer ${SECRET}`);
    assert.ok(!r.stdout.includes(SECRET), 'the response is scrubbed');
  });

  it('carries curl with every proxy variable unset to https://NAME/ on 443 and http://NAME/ on 80 through Turret', async () => {
    const cmd =
      'unset HTTPS_PROXY HTTP_PROXY https_proxy http_proxy ALL_PROXY all_proxy; env | grep -ciE "^(https?|all)_proxy=" ; curl -sS --max-time 20 -H "Authorization: Bearer $API_TOKEN" https://web.turret.test/direct-tls; echo; curl -sS --max-time 20 http://web.turret.test/direct-plain';
    const r = await run(['sh', '-c', cmd]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^0$/m, 'no proxy variable left');
    const tlsReq = web.find((x) => x.url === '/direct-tls');
    assert.equal(tlsReq?.headers.authorization, `Bearer ${SECRET}`);
    assert.ok(web.some((x) => x.url === '/direct-plain'));
    const open = await waitForAudit(t, (x) => x.event === 'tunnel_open' && x.host === 'web.turret.test' && x.agent === 'runner' && x.outcome === 'allowed');
    assert.match(String(open?.reason), /^transparent:/);
    const done = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/direct-tls' && x.agent === 'runner');
    assert.equal(done?.outcome, 'completed');
  });

  it('runs python3, node and git', async () => {
    const py = `import os, urllib.request; print(urllib.request.urlopen("https://echo.turret.test:${up.port}/py", timeout=20).status)`;
    const nodeJs = `require('https').get('https://web.turret.test/node', (res) => { console.log('node', res.statusCode); res.resume(); });`;
    const r = await run([
      'sh',
      '-c',
      `/usr/bin/python3 -c '${py}' && node -e "${nodeJs}" && git init -q repo && cd repo && git -c user.name=a -c user.email=a@b commit -q --allow-empty -m one && git log --oneline | wc -l`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^200$/m);
    assert.match(r.stdout, /^node 200$/m);
    assert.match(r.stdout, /^1$/m);
    assert.ok(up.received.some((x) => x.url === '/py'));
    assert.ok(web.some((x) => x.url === '/node'));
  });

  it('returns the exit code and forwards SIGTERM to the command', async () => {
    assert.equal((await run(['sh', '-c', 'exit 7'])).code, 7);
    const r = await run(['sh', '-c', 'trap "echo got-term; exit 9" TERM; echo ready; while :; do sleep 0.2; done'], {
      onStdout: (s, p) => {
        if (s === 'ready\n') p.kill('SIGTERM');
      },
    });
    assert.equal(r.code, 9);
    assert.match(r.stdout, /got-term/);
  });
});

describe('turret run without namespaces, and with a terminal', () => {
  let t: TurretProc;
  const work = mkdtempSync(path.join(tmpdir(), 'turret-sbx2-'));
  chmodSync(work, 0o777);

  before(async () => {
    t = await startTurret({ rules: { 'r.yaml': 'agents: [{ name: runner }]\nrules: []\n' }, env: { TURRET_ADMIN: 'off' } });
  });
  after(async () => {
    await t?.stop();
  });

  const runWith = (env: Record<string, string>, extra: string[], cmd: string[]): Promise<Run> => runCli(runArgs(t, 'runner', extra, cmd), { cwd: work, env: cleanEnv(env) });

  it('refuses to run unisolated when bubblewrap is missing or user namespaces are off, naming cause and fix', async () => {
    const missing = await runWith({ TURRET_BWRAP: path.join(work, 'no-such-bwrap') }, [], ['true']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot isolate the command: bubblewrap .* is not installed; install it/);
    assert.match(missing.stderr, /--no-sandbox/);
    // A bwrap that fails the way a kernel without unprivileged user namespaces makes it fail.
    const fake = path.join(work, 'fake-bwrap');
    writeFileSync(
      fake,
      '#!/bin/sh\necho "bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces." >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const off = await runWith({ TURRET_BWRAP: fake }, [], ['sh', '-c', 'echo RAN']);
    assert.equal(off.code, 2);
    assert.ok(!off.stdout.includes('RAN'), 'the command never runs');
    assert.match(off.stderr, /user namespaces/);
    assert.match(off.stderr, /kernel\.unprivileged_userns_clone=1/);
    // The explicit opt-out runs it, and says what it gives up, on every start.
    for (let i = 0; i < 2; i++) {
      const opted = await runWith({ TURRET_BWRAP: fake }, ['--no-sandbox'], ['sh', '-c', 'echo RAN; id -u']);
      assert.equal(opted.code, 0, opted.stderr);
      assert.match(opted.stdout, /^RAN$/m);
      assert.match(opted.stderr, /WARNING: --no-sandbox: .*cooperative only/);
    }
  });

  it('runs an interactive shell on a pty: commands and exit code', async () => {
    const cmd = [process.execPath, MAIN, ...runArgs(t, 'runner', [], ['bash', '--norc', '--noprofile', '-i'])].map((a) => `'${a}'`).join(' ');
    const p = spawn('script', ['-qfec', cmd, '/dev/null'], { cwd: work, env: cleanEnv({ TERM: 'dumb', PS1: '$ ' }), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const waitFor = (re: RegExp | (() => boolean)): Promise<void> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (typeof re === 'function' ? re() : re.test(out)) {
            p.stdout.off('data', check);
            p.off('close', fail);
            resolve();
          }
        };
        const fail = (): void => reject(new Error(`the shell ended before ${re}: ${out}`));
        p.stdout.on('data', check);
        p.once('close', fail);
        check();
      });
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stdin.write('[ -t 0 ] && echo "TTY-$((6*7))"\n');
    await waitFor(/TTY-42/);
    // Ctrl-C of a foreground program is left out here: on a clean CI run the interrupt sometimes
    // never reached the program inside the PID namespace and the test hung (see docs/security.md).
    p.stdin.write('echo "AFTER-$((40+3))"\n');
    await waitFor(/AFTER-43/);
    const closed = new Promise<number>((r) => p.once('close', (c) => r(c ?? -1)));
    p.stdin.write('exit 5\n');
    assert.equal(await closed, 5);
  });
});
