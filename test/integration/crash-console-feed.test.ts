/**
 * The console's live feed while the scrubber fails (attack review of the promises nobody
 * awaits). With an operator watching /console/events, every audit record is scrubbed again for
 * the feed inside the audit write (console/feed.ts), and that write sits in runExchange's
 * `finally` (not awaited by connection.ts) and in a tunnel's 'close' handler. A record the
 * scrubber failed on (the WebAssembly keyword loop trapping, test/fixtures/preload/wasm-trap.mjs,
 * on a record of 1 KiB or more) threw out of there: an unhandled rejection that ended the process.
 * The feed now shows a reduced record instead, like the audit log itself (audit/writer.ts).
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { agentToken, ROOT, startTurret, until, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { basicAuth, readResponse } from '../helpers/raw-proxy.js';
import { postForm } from '../helpers/console.js';
import { adminPort } from '../helpers/ops.js';
import { LOOPBACK } from '../helpers/rules.js';

const ADMIN_TOKEN = `admin_${'f'.repeat(8)}${Date.now().toString(16)}`;

let t: TurretProc;
let auth = '';

before(async () => {
  t = await startTurret({
    rules: {
      'r.yaml': {
        agents: ['a'],
        rules: [{ name: 'up', methods: ['read'], schemes: ['http'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
        local: ['up.turret.test'],
      },
    },
    env: { TURRET_ADMIN_TOKEN: ADMIN_TOKEN, NODE_OPTIONS: `--import ${path.join(ROOT, 'test/fixtures/preload/wasm-trap.mjs')}`, TURRET_TEST_WASM_TRAP_AFTER: '0' },
  });
  auth = basicAuth('a', await agentToken(t, 'a'));
});
after(() => t.stop());

it('a record the scrubber fails on while the live feed is open: the request is answered, one audit record, the feed shows a reduced record, the proxy lives on', async () => {
  const admin = adminPort(t);
  const login = await postForm(admin, '/console/login', { token: ADMIN_TOKEN });
  assert.equal(login.status, 303);
  const cookie = String(login.headers['set-cookie']).split(';')[0] ?? '';
  let feed = '';
  const sse = http.get({ host: '127.0.0.1', port: admin, path: '/console/events', headers: { cookie }, agent: false });
  const [res] = (await once(sse, 'response')) as [http.IncomingMessage];
  assert.equal(res.statusCode, 200);
  res.setEncoding('utf8');
  res.on('data', (c: string) => (feed += c));
  await until(() => feed.includes(': live'), 'the feed to open');

  // 2 KiB of path: the record (1 KiB or more) goes through the trapping loop.
  const long = `/${'a'.repeat(2048)}`;
  const s = net.connect(t.port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  s.write(`GET http://up.turret.test:1${long} HTTP/1.1\r\nHost: up.turret.test:1\r\nProxy-Authorization: ${auth}\r\nConnection: close\r\n\r\n`);
  const r = await readResponse(s);
  s.destroy();
  // Nothing listens on port 1: the upstream cannot be reached.
  assert.equal(r.status, 502);
  assert.equal(r.headers['x-turret-error'], 'upstream_connect_failed');
  // The audit log's own scrub failed on it too: its one record is the reduced one (audit/writer.ts).
  const rec = await waitForAudit(t, (x) => x.event === 'request');
  assert.equal(rec?.outcome, 'failed', t.auditText());
  assert.equal(t.audit().filter((x) => x.event === 'request').length, 1);
  await until(
    () => feed.includes('event: record'),
    () => `a record in the feed: ${feed} (exit ${t.proc.exitCode}: ${t.stderr().slice(-1500)})`,
  );
  assert.ok(!feed.includes('a'.repeat(100)), 'the feed shows nothing the scrubber could not scan');
  assert.match(feed, /record reduced/);
  assert.equal(t.proc.exitCode, null, t.stderr().slice(-2000));
  sse.destroy();
});
