/**
 * The console's live feed with a client that stops reading (a laptop asleep with the console
 * open, a stuck tab). The feed wrote every record to the response regardless: what the client did
 * not read stayed in Turret's memory, growing with every request any agent made. A feed now holds
 * at most SSE_MAX_BUFFERED (1 MiB) unsent; past that it is closed (the browser's EventSource
 * reconnects once it reads again), logged, and nothing else changes: every request is still
 * answered and recorded once, and a feed whose client reads stays open.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { agentToken, startTurret, until, waitForAudit, waitForLog, type TurretProc } from '../helpers/turret.js';
import { basicAuth } from '../helpers/raw-proxy.js';
import { postForm } from '../helpers/console.js';
import { adminPort } from '../helpers/ops.js';

const ADMIN_TOKEN = `admin_${'e'.repeat(8)}${Date.now().toString(16)}`;
const CLOSED = /console live feed closed: its client is not reading/;

let t: TurretProc;
let auth = '';

before(async () => {
  t = await startTurret({
    rules: { 'r.yaml': { agents: ['a'], rules: [{ name: 'only', methods: ['read'], schemes: ['http'], hosts: ['allowed.turret.test'] }] } },
    env: { TURRET_ADMIN_TOKEN: ADMIN_TOKEN },
  });
  auth = basicAuth('a', await agentToken(t, 'a'));
});
after(() => t.stop());

/** The feed over a raw socket: the head and the first comment read, then whatever the test does. */
async function openFeed(port: number, cookie: string): Promise<{ s: net.Socket; text: () => string }> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  let text = '';
  const onData = (c: Buffer): void => void (text += c.toString('latin1'));
  s.on('data', onData);
  s.write(`GET /console/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${cookie}\r\n\r\n`);
  await until(
    () => text.includes(': live'),
    () => `the feed to open: ${text.slice(0, 300)}`,
  );
  assert.match(text, /^HTTP\/1\.1 200 /);
  return { s, text: () => text };
}

/** A request the rules deny (one audit record each, no upstream); `path` lands in the record. */
function denied(agent: http.Agent, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: t.port, path: `http://denied.turret.test${path}`, headers: { host: 'denied.turret.test', 'proxy-authorization': auth }, agent },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

it('a feed whose client stops reading is closed at 1 MiB unsent; requests are answered and recorded once each, a reading feed stays open', async () => {
  const admin = adminPort(t);
  const login = await postForm(admin, '/console/login', { token: ADMIN_TOKEN });
  assert.equal(login.status, 303);
  const cookie = String(login.headers['set-cookie']).split(';')[0] ?? '';

  const stalled = await openFeed(admin, cookie);
  stalled.s.pause(); // reads nothing more: the kernel's buffers fill, then Turret's
  const reading = await openFeed(admin, cookie);
  let readingClosed = false;
  reading.s.on('close', () => (readingClosed = true));

  // Records of ~4 KiB each (the path field's cap) until Turret gives up on the stalled feed;
  // bounded: 1 MiB of Turret's own buffer plus the kernel's takes a few thousand.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const long = `/${'p'.repeat(4096)}`;
  let sent = 0;
  for (; sent < 20_000 && !CLOSED.test(t.stderr()); sent++) assert.equal(await denied(agent, long), 403);
  assert.match(t.stderr(), CLOSED, `the stalled feed was not closed after ${sent} records`);
  assert.ok(sent < 20_000);

  // The stalled client, reading again, finds its feed ended by Turret.
  const stalledClosed = once(stalled.s, 'close');
  stalled.s.resume();
  await stalledClosed;

  // A marker request after that: answered, recorded, shown to the feed that reads.
  assert.equal(await denied(agent, '/marker-after-close'), 403);
  agent.destroy();
  await waitForAudit(t, (r) => typeof r.path === 'string' && r.path.includes('marker-after-close'));
  await until(
    () => reading.text().includes('marker-after-close'),
    () => `the reading feed to show the marker (closed: ${readingClosed}; ${reading.text().length} bytes)`,
  );
  assert.equal(readingClosed, false, 'a feed whose client reads stays open');
  assert.equal(t.audit().filter((r) => r.event === 'request').length, sent + 1, 'one record per request');
  assert.equal((t.stderr().match(new RegExp(CLOSED.source, 'g')) ?? []).length, 1, 'only the stalled feed was closed');
  assert.equal(t.proc.exitCode, null);

  // A new feed opens as before (the closed one's subscription is gone, not leaked).
  const again = await openFeed(admin, cookie);
  await waitForLog(t, CLOSED);
  again.s.destroy();
  reading.s.destroy();
});
