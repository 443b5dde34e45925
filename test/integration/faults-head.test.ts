/**
 * Response heads are relayed as soon as the upstream's body starts (issue #13, stages/relay.ts):
 * an upstream that sends its head and one body byte, then waits for the test, has its status and
 * headers at the client while it is still waiting — on the proxy port and inside an intercepted
 * tunnel. And an upstream that closes right after its head (announcing 100 bytes, sending none) is
 * answered 502 upstream_closed with exactly one record, instead of an empty reply.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startFaultUpstream, type FaultUpstream } from '../helpers/fault-upstream.js';
import { agentToken, basic, rawConnect } from '../helpers/ops.js';
import { readResponse } from '../helpers/raw-proxy.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';
import { startTurret, until, waitForAudit, type TurretProc } from '../helpers/turret.js';

const RULES: RuleFile = {
  agents: ['agent-a'],
  rules: [{ name: 'up', methods: ['read'], schemes: ['http', 'https'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['up.turret.test'],
};

describe('response heads reach the client early; an upstream gone after its head is a 502', () => {
  let t: TurretProc;
  let up: FaultUpstream;
  let auth: string;
  let ca: Buffer;

  before(async () => {
    up = await startFaultUpstream();
    t = await startTurret({ rules: { 'r.yaml': RULES } });
    auth = basic('agent-a', await agentToken(t, 'agent-a'));
    ca = readFileSync(path.join(t.caDir, 'ca.crt'));
  });
  after(async () => {
    await t?.stop();
    await up?.close();
  });

  const open = async (inTunnel: boolean): Promise<{ s: net.Socket; prefix: string; port: number }> => {
    if (!inTunnel) {
      const s = net.connect(t.port, '127.0.0.1');
      await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
      return { s, prefix: `http://up.turret.test:${up.port}`, port: up.port };
    }
    const c = await rawConnect(t.port, `up.turret.test:${up.tlsPort}`, auth);
    assert.equal(c.status, 200);
    const s = tls.connect({ socket: c.socket, servername: 'up.turret.test', ca });
    await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
    return { s, prefix: '', port: up.tlsPort };
  };
  const get = (prefix: string, port: number, p: string): string =>
    `GET ${prefix}${p} HTTP/1.1\r\nHost: up.turret.test:${port}\r\n${prefix ? `Proxy-Authorization: ${auth}\r\n` : ''}Connection: close\r\n\r\n`;
  const recordsFor = (p: string): Array<Record<string, unknown>> => t.audit().filter((r) => r.path === p);

  for (const inTunnel of [false, true]) {
    const where = inTunnel ? 'inside an intercepted tunnel' : 'on the proxy port';
    const tag = inTunnel ? 'tls' : 'plain';

    it(`status and headers reach the client before the upstream sends its second body byte (${where})`, async () => {
      const p = `/slow/${tag}-head`;
      const { s, prefix, port } = await open(inTunnel);
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString('latin1')));
      const ended = new Promise<void>((resolve) => s.once('close', () => resolve()));
      s.write(get(prefix, port, p));
      // The upstream has sent its head and the first byte, and waits for step().
      await up.waitSeen(p);
      await until(
        () => got.includes('\r\n\r\n'),
        () => `the response head at the client while the upstream waits (got ${JSON.stringify(got)})`,
      );
      assert.match(got, /^HTTP\/1\.1 200 /);
      assert.match(got, /\r\ncontent-type: text\/plain\r\n/i);
      // Nothing was stepped yet: the upstream is still holding its second byte.
      assert.equal(recordsFor(p).length, 0, 'the exchange is still running');
      // Now the rest of the body (99 bytes), and the exchange completes.
      for (let i = 0; i < 99; i++) up.step();
      await ended;
      const body = got.slice(got.indexOf('\r\n\r\n') + 4);
      const text = /transfer-encoding: chunked/i.test(got) ? dechunk(body) : body;
      assert.equal(text, `a${'b'.repeat(99)}`);
      const rec = await waitForAudit(t, (r) => r.path === p);
      assert.equal(rec?.outcome, 'completed');
      assert.equal(rec?.status, 200);
      assert.equal(recordsFor(p).length, 1);
    });

    it(`an upstream that closes right after its head: 502 upstream_closed, one record (${where})`, async () => {
      const p = `/headers-only/${tag}`;
      const { s, prefix, port } = await open(inTunnel);
      const res = readResponse(s);
      s.write(get(prefix, port, p));
      const r = await res;
      assert.equal(r.status, 502);
      assert.equal(r.headers['x-turret-error'], 'upstream_closed');
      const rec = await waitForAudit(t, (x) => x.path === p);
      assert.equal(rec?.outcome, 'failed');
      assert.equal(rec?.code, 'upstream_closed');
      assert.equal(rec?.status, 502);
      await up.waitOpen(0);
      assert.equal(recordsFor(p).length, 1);
      s.destroy();
    });
  }
});

/** The payload of a complete chunked body. */
function dechunk(body: string): string {
  let out = '';
  let rest = body;
  for (let i = 0; i < 10_000; i++) {
    const nl = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, nl), 16);
    if (!(size > 0)) return out;
    out += rest.slice(nl + 2, nl + 2 + size);
    rest = rest.slice(nl + 2 + size + 2);
  }
  return out;
}
