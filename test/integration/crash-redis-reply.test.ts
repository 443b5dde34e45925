/**
 * A shared-state server that answers garbage (attack review, crashrev2): a hostile or broken
 * Redis, or anyone on the path to a plain redis:// URL. A reply nested a few thousand arrays deep
 * overflowed the stack in ioredis's parser, inside the socket's 'data' handler: an uncaught
 * exception, the proxy exited 1 at the first rate-limited request. Each unreadable or ill-typed
 * reply is now a failed command: development serves from local state, one record per request,
 * and the process lives and stops cleanly.
 *
 * The server is a small RESP speaker on loopback: enough of INFO, SUBSCRIBE and the revocation
 * reads for ioredis to count it connected, and then the answer under test to the rate-limit
 * script (EVALSHA). A server that answers part of a reply and then nothing (or nothing at all)
 * times the command out; the connection is then dropped and made again, not left to time out
 * every later command behind the missing bytes.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { agentToken, startTurret, until, waitForAudit, waitForLog, type TurretProc } from '../helpers/turret.js';
import { basicAuth, readResponse } from '../helpers/raw-proxy.js';
import { LOOPBACK } from '../helpers/rules.js';
import { countedServer, type CountedServer } from '../helpers/counted-server.js';

/** Answers to the rate-limit script, by name; `drops`: unreadable, so the connection is dropped and made again. */
const ANSWERS: Array<{ name: string; text: string; drops: boolean }> = [
  { name: 'nested 5,000 arrays deep', text: '*1\r\n'.repeat(5_000) + ':0\r\n', drops: true },
  { name: 'nested 200,000 arrays deep', text: '*1\r\n'.repeat(200_000) + ':0\r\n', drops: true },
  { name: 'not a reply type', text: '!garbage\r\n', drops: true },
  // The parser copies and scans an unfinished line again at each read: 64 MiB held the event loop for about a minute (crashrev3).
  { name: 'a status line that never ends (64 MiB)', text: '+' + 'a'.repeat(64 * 1024 * 1024), drops: true },
  { name: 'a bulk string announced at 1 GiB', text: '$1073741824\r\nabc', drops: true },
  // No reply, or part of one, and then nothing: the command times out (shared_state.timeout, 1 s),
  // and every later command on that connection would wait behind the missing bytes, so the
  // connection is dropped and made again (the next case waits for that reconnect).
  { name: 'no reply at all (a hung server)', text: '', drops: true },
  { name: 'part of an array, then nothing', text: '*3\r\n:1\r\n', drops: true },
  { name: 'part of a bulk string, then nothing', text: '$10\r\nabc', drops: true },
  { name: 'an integer', text: ':7\r\n', drops: false },
  { name: 'an array naming no bucket', text: '*2\r\n:9\r\n$3\r\nabc\r\n', drops: false },
];
/** "shared state (re)connected" lines Turret has logged when the next case starts. */
let connects = 1;

let answer = '*1\r\n:0\r\n';
/** Rate-limit script calls the server answered. */
let scripts = 0;
let fake: net.Server;
let up: CountedServer;
let t: TurretProc;
let auth = '';

before(async () => {
  fake = net.createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (c: Buffer) => {
      for (const m of c.toString('latin1').matchAll(/\*\d+\r\n\$\d+\r\n([A-Za-z]+)/g)) {
        const cmd = (m[1] ?? '').toLowerCase();
        if (cmd === 'info') s.write('$9\r\nloading:0\r\n');
        else if (cmd === 'subscribe') s.write('*3\r\n$9\r\nsubscribe\r\n$14\r\nturret:revoked\r\n:1\r\n');
        else if (cmd === 'zrangebyscore') s.write('*0\r\n');
        else if (cmd === 'evalsha' || cmd === 'eval') {
          scripts++;
          s.write(answer);
        } else if (cmd === 'quit') s.end('+OK\r\n');
        else s.write('+OK\r\n');
      }
    });
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  up = await countedServer((s) => s.on('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')));
  t = await startTurret({
    rules: {
      'r.yaml': {
        agents: ['a'],
        rules: [{ name: 'lim', methods: ['read'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK, rate_limit: { requests: 1000, per: '1m' } }],
        local: ['up.turret.test'],
        settings: { shared_state: { url: `redis://127.0.0.1:${(fake.address() as net.AddressInfo).port}` } },
      },
    },
  });
  await waitForLog(t, /"msg":"shared state connected"/);
  auth = basicAuth('a', await agentToken(t, 'a'));
});
after(async () => {
  await t?.stop();
  fake.close();
  up.server.close();
});

for (const { name, text, drops } of ANSWERS) {
  it(`the rate-limit script answered with ${name}: the request is served from local state, one record, the proxy lives`, async () => {
    answer = text;
    // Connected (again, after an unreadable reply dropped the connection), so the script is really asked.
    await until(() => (t.stderr().match(/"msg":"shared state (re)?connected"/g) ?? []).length === connects, `shared state connection ${connects}`);
    if (drops) connects++;
    const asked = scripts;
    const path = `/${name.replace(/[^a-z0-9]+/g, '-')}`;
    const s = net.connect(t.port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    s.write(`GET http://up.turret.test:${up.port}${path} HTTP/1.1\r\nHost: up.turret.test:${up.port}\r\nProxy-Authorization: ${auth}\r\nConnection: close\r\n\r\n`);
    const r = await readResponse(s);
    s.destroy();
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.equal(scripts, asked + 1, 'the rate-limit script was asked once');
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === path);
    assert.equal(rec?.outcome, 'completed', JSON.stringify(rec));
    assert.equal(t.audit().filter((x) => x.event === 'request' && x.path === path).length, 1);
    assert.equal(t.proc.exitCode, null, t.stderr().slice(-2000));
  });
}

it('stops cleanly afterwards (exit 0)', async () => {
  answer = '*1\r\n:0\r\n';
  const exited = once(t.proc, 'exit');
  t.proc.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0, t.stderr().slice(-2000));
});
