/**
 * A secret source that fails must not end the proxy (attack review of the promises nobody
 * awaits). Secret values are read while the scrubber is built, and the scrubber is built on the way out of a failure too: a WebSocket upgrade's refusal (websocket.ts, whose
 * promise server.ts does not await), a log line, readiness at SIGTERM. A store file whose entries
 * are not objects (hand-edited, damaged) made SecretStore.get throw a TypeError: the proxy did not
 * start, and a store damaged while it ran ended it at the next WebSocket upgrade. Such an entry
 * is a missing value (secret_unavailable where a request needs it), like any source that fails.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { agentToken, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { basicAuth, readResponse } from '../helpers/raw-proxy.js';
import { startRawUpstream, type RawUpstream } from '../helpers/raw-upstream.js';
import { LOOPBACK } from '../helpers/rules.js';

/** Entries of every shape that is not an encrypted entry: each is a missing value. */
const DAMAGED: Record<string, unknown> = { text: 'not an entry', nothing: null, number: 7, list: [1, 2], fields: { iv: 5, ct: [], tag: {} } };

let t: TurretProc;
let up: RawUpstream;
let auth = '';

before(async () => {
  up = await startRawUpstream();
  const caDir = mkdtempSync(path.join(tmpdir(), 'turret-ca-'));
  writeFileSync(path.join(caDir, 'secrets.store.json'), JSON.stringify({ version: 1, entries: DAMAGED }));
  t = await startTurret({
    caDir,
    rules: {
      'r.yaml': {
        agents: ['a'],
        secrets: Object.keys(DAMAGED).map((name) => ({ name, from: { store: name }, hosts: ['nowhere.turret.test:*'] })),
        rules: [{ name: 'up', methods: ['read', 'websocket'], schemes: ['http'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
        local: ['up.turret.test'],
      },
    },
  });
  auth = basicAuth('a', await agentToken(t, 'a'));
});
after(async () => {
  await t.stop();
  await up.close();
});

async function exchange(text: string): Promise<{ status: number; body: string }> {
  const s = net.connect(t.port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  s.write(text);
  const r = await readResponse(s);
  s.destroy();
  return r;
}

it('a store with malformed entries: the proxy starts with those secrets missing, answers a request and a WebSocket upgrade, and drains on SIGTERM', async () => {
  for (const name of Object.keys(DAMAGED)) assert.match(t.stderr(), new RegExp(`secret has no value.*"secret":"${name}"`), name);
  const target = `http://up.turret.test:${up.port}`;
  const get = await exchange(`GET ${target}/get HTTP/1.1\r\nHost: up.turret.test:${up.port}\r\nProxy-Authorization: ${auth}\r\nConnection: close\r\n\r\n`);
  assert.equal(get.status, 200);
  assert.equal(get.body, 'ok');
  // The upgrade's answer is the upstream's 200, relayed (websocket.ts relayAnswer).
  const ws = await exchange(
    `GET ${target}/ws HTTP/1.1\r\nHost: up.turret.test:${up.port}\r\nProxy-Authorization: ${auth}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  assert.equal(ws.status, 200);
  for (const p of ['/get', '/ws']) {
    const rec = await waitForAudit(t, (r) => r.event === 'request' && r.path === p);
    assert.equal(rec?.outcome, 'completed', `${p}: ${JSON.stringify(rec)}`);
    assert.equal(t.audit().filter((r) => r.event === 'request' && r.path === p).length, 1, p);
  }
  assert.equal(t.proc.exitCode, null, 'the proxy is still running');
  const exited = once(t.proc, 'exit');
  t.proc.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0, t.stderr().slice(-2000));
  assert.match(t.stderr(), /"msg":"stopped"/);
});
