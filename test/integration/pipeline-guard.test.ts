/**
 * The slow-client guard of intercepted tunnels (limits.ts) and pipelining: a connection is idle,
 * waiting for a new request head, only once every request on it has been answered. A pipelined
 * request still waiting for its upstream after the one before it was answered is not an idle
 * connection: it must not get a raw 408 client_timeout (which the client would read as that
 * request's answer), nor be closed, nor recorded client_closed; nor is it closed as idle when a
 * drain starts (SIGTERM): it gets its answer within the drain timeout. Found by the attack review
 * of the seventh pass (the guard's 'responded' listener took any answer for the connection's last).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startFaultUpstream, type FaultUpstream } from '../helpers/fault-upstream.js';
import { agentToken, basic, rawConnect } from '../helpers/ops.js';
import { startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { LOOPBACK } from '../helpers/rules.js';
import { parseResponses } from '../helpers/http-wire.js';

const RULES = {
  agents: ['agent-a'],
  rules: [{ name: 'up', methods: ['read'], schemes: ['https'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['up.turret.test'],
};

describe('slow-client guard inside a tunnel: a pipelined request still waiting for its upstream', () => {
  let t: TurretProc;
  let up: FaultUpstream;
  let auth: string;
  let ca: Buffer;

  before(async () => {
    up = await startFaultUpstream();
    t = await startTurret({
      rules: { 'r.yaml': RULES },
      args: ['--limit', 'client_headers_timeout=1s'],
    });
    auth = basic('agent-a', await agentToken(t, 'agent-a'));
    ca = readFileSync(path.join(t.caDir, 'ca.crt'));
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  it('gets its own answer once the upstream sends it, on the same connection, and one completed record', async () => {
    const a = await tunnel(t, up, auth, ca);
    const host = `Host: up.turret.test:${up.tlsPort}\r\n`;
    a.s.write(`GET /ok/pg-fast HTTP/1.1\r\n${host}\r\nGET /hang/pg-slow HTTP/1.1\r\n${host}\r\n`);
    await up.waitSeen('/hang/pg-slow');
    const answers = (): number => parseResponses(a.got(), { closed: false }).responses.length;
    await a.until(() => answers() >= 1);
    assert.equal(answers(), 1, a.got().toString('latin1'));
    // A connection opened after that answer, left idle, gets its 408 once the head timeout has
    // passed: by then the guard has looked at the first connection past the same limit too.
    const idle = await tunnel(t, up, auth, ca);
    await idle.until(() => idle.got().includes('\r\n\r\n'));
    assert.match(idle.got().toString('latin1'), /^HTTP\/1\.1 408 /);
    assert.equal(a.s.destroyed, false, `the pipelined connection was closed: ${a.got().toString('latin1')}`);
    up.release();
    await a.until(() => answers() >= 2);
    const [fast, slow] = parseResponses(a.got(), { closed: false }).responses;
    assert.equal(fast?.status, 200);
    assert.equal(slow?.status, 200, a.got().toString('latin1'));
    assert.equal(slow?.body.toString(), 'late');
    a.s.destroy();
    idle.s.destroy();
    const rec = await waitForAudit(t, (r) => r.path === '/hang/pg-slow');
    assert.equal(rec?.code, undefined, JSON.stringify(rec));
    assert.equal(rec?.status, 200);
    // One client_timeout refusal: the idle connection's, none for the pipelined one.
    assert.equal(t.audit().filter((r) => r.code === 'client_timeout').length, 1, t.auditText());
  });
});

/** A decrypted connection inside a CONNECT tunnel, with what it received and a wait on it. */
async function tunnel(t: TurretProc, up: FaultUpstream, auth: string, ca: Buffer): Promise<{ s: tls.TLSSocket; got: () => Buffer; until: (ok: () => boolean) => Promise<void> }> {
  const c = await rawConnect(t.port, `up.turret.test:${up.tlsPort}`, auth);
  assert.equal(c.status, 200);
  const s = tls.connect({ socket: c.socket, servername: 'up.turret.test', ca });
  s.on('error', () => undefined);
  let got = Buffer.alloc(0);
  const waiters = new Set<() => void>();
  s.on('data', (b: Buffer) => {
    got = Buffer.concat([got, b]);
    for (const w of [...waiters]) w();
  });
  s.on('close', () => {
    for (const w of [...waiters]) w();
  });
  await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
  const until = (ok: () => boolean): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (!ok() && !s.destroyed) return;
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });
  return { s, got: () => got, until };
}

describe('drain inside a tunnel: a pipelined request still waiting for its upstream', () => {
  let t: TurretProc;
  let up: FaultUpstream;

  before(async () => {
    up = await startFaultUpstream();
    t = await startTurret({
      rules: { 'r.yaml': RULES },
      args: ['--drain-timeout', '20s'],
    });
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  it('is not closed as an idle connection at SIGTERM: it gets its answer and a completed record, then Turret exits', async () => {
    const auth = basic('agent-a', await agentToken(t, 'agent-a'));
    const ca = readFileSync(path.join(t.caDir, 'ca.crt'));
    const a = await tunnel(t, up, auth, ca);
    const idle = await tunnel(t, up, auth, ca);
    const host = `Host: up.turret.test:${up.tlsPort}\r\n`;
    a.s.write(`GET /ok/dr-fast HTTP/1.1\r\n${host}\r\nGET /hang/dr-slow HTTP/1.1\r\n${host}\r\n`);
    await up.waitSeen('/hang/dr-slow');
    const answers = (): number => parseResponses(a.got(), { closed: false }).responses.length;
    await a.until(() => answers() >= 1);
    const exited = new Promise<number | null>((resolve) => t.proc.once('exit', (code) => resolve(code)));
    t.proc.kill('SIGTERM');
    // The drain closes idle connections at once: the idle one's close says that check has run.
    await idle.until(() => false);
    assert.equal(a.s.destroyed, false, 'the pipelined connection was closed as idle');
    up.release();
    await a.until(() => answers() >= 2);
    const [, slow] = parseResponses(a.got(), { closed: false }).responses;
    assert.equal(slow?.status, 200, a.got().toString('latin1'));
    assert.equal(slow?.body.toString(), 'late');
    a.s.destroy();
    assert.equal(await exited, 0);
    const recs = t.audit().filter((r) => r.path === '/hang/dr-slow');
    assert.equal(recs.length, 1, t.auditText());
    assert.equal(recs[0]?.code, undefined, JSON.stringify(recs[0]));
  });
});
