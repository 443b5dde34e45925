/**
 * What the wait of a pipelined upgrade or CONNECT (connection.ts afterEarlier, handleUpgrade)
 * must survive (attack review of crashrev2's fix, crashrev3): a response ahead of it too large for
 * the socket's buffers. Node takes its own listeners off the socket when it hands it over for the
 * upgrade, its 'drain' one too: the response ahead, writing through the same socket, then never
 * heard that the socket drained. And a client that resets or half-closes while an allowed CONNECT
 * waits (these held: one record for each exchange, the tunnel's end with its cause).
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { agentToken, startTurret, until, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { basicAuth } from '../helpers/raw-proxy.js';
import { LOOPBACK, plainWsRules } from '../helpers/rules.js';
import { countedServer, readHead, type CountedServer } from '../helpers/counted-server.js';
import { proxiedGet, proxiedUpgrade, switching } from '../helpers/ws-wire.js';

/** Far more than the socket buffers on both sides of Turret hold. */
const BIG = 8 * 1024 * 1024;

let t: TurretProc;
let auth = '';
let upstream: CountedServer;
let upPort = 0;
/** Upstream sockets holding the second half of a /held body. */
const held: net.Socket[] = [];

before(async () => {
  upstream = await countedServer((s) =>
    readHead(s, (head) => {
      if (/^GET \/held/.test(head)) {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234');
        return void held.push(s);
      }
      if (!/^GET \/big/.test(head)) return void s.write(switching(head));
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BIG}\r\n\r\n`);
      s.end(Buffer.alloc(BIG, 'a'));
    }),
  );
  upPort = upstream.port;
  t = await startTurret({
    rules: {
      'r.yaml': {
        ...plainWsRules(['ws.turret.test', 'denied.turret.test', 'tls.turret.test']),
        rules: [...(plainWsRules().rules ?? []), { name: 'tls', methods: ['read'], schemes: ['https'], hosts: ['tls.turret.test:*'], unsafe_addresses: LOOPBACK }],
      },
    },
  });
  auth = basicAuth('a', await agentToken(t, 'a'));
});
after(() => Promise.all([t?.stop(), new Promise((r) => upstream.server.close(r))]));

/** What follows the body that starts at `at` (its length declared, or chunked); '' while it is incomplete. */
function afterBody(all: Buffer, at: number, head: string): string {
  const length = /\r\ncontent-length: *(\d+)/i.exec(head);
  if (length) return all.subarray(at + Number(length[1])).toString('latin1');
  let size = 0;
  let body = 0;
  do {
    const line = all.indexOf('\r\n', at);
    if (line < 0) return '';
    size = parseInt(all.subarray(at, line).toString('latin1'), 16);
    body += size;
    at = line + 2 + size + 2;
    if (at > all.length) return '';
  } while (size > 0);
  assert.equal(body, BIG);
  return all.subarray(at).toString('latin1');
}

/** Sends the big GET and `second` in one write; reads until `done` holds for what follows the GET's body. */
async function behindBig(path: string, second: string, done: RegExp): Promise<{ s: net.Socket; head: string; rest: string }> {
  const s = net.connect(t.port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  const chunks: Buffer[] = [];
  let n = 0;
  s.on('data', (c: Buffer) => {
    chunks.push(c);
    n += c.length;
  });
  s.write(proxiedGet(`ws.turret.test:${upPort}`, path, auth) + second);
  const parts = (): { head: string; rest: string } => {
    const all = Buffer.concat(chunks);
    chunks.splice(0, chunks.length, all);
    const end = all.indexOf('\r\n\r\n');
    if (end < 0) return { head: '', rest: '' };
    const head = all.subarray(0, end).toString('latin1');
    return { head, rest: afterBody(all, end + 4, head) };
  };
  await until(
    () => done.test(parts().rest) || s.closed,
    () => `the whole ${BIG} byte response, then the answer (read ${n} bytes): ${JSON.stringify(parts().rest)}`,
    30_000,
  );
  return { s, ...parts() };
}

it('a WebSocket upgrade pipelined behind a response larger than the socket buffers: the whole response, then the 101', async () => {
  const { s, head, rest } = await behindBig('/big-ws', proxiedUpgrade(`ws.turret.test:${upPort}`, '/ws-after-big', auth), /^HTTP\/1\.1 101 [^]*\r\n\r\n/);
  assert.match(head, /^HTTP\/1\.1 200 /);
  assert.match(rest, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  s.destroy();
  const big = await waitForAudit(t, (r) => r.event === 'request' && r.path === '/big-ws');
  assert.equal(big?.status, 200, JSON.stringify(big));
  const ws = await waitForAudit(t, (r) => r.event === 'request' && r.path === '/ws-after-big');
  assert.equal(ws?.status, 101, JSON.stringify(ws));
});

it('a CONNECT pipelined behind a response larger than the socket buffers: the whole response, then its refusal, one record each', async () => {
  const connect = `CONNECT denied.turret.test:443 HTTP/1.1\r\nHost: denied.turret.test:443\r\nProxy-Authorization: ${auth}\r\n\r\n`;
  const { s, head, rest } = await behindBig('/big-connect', connect, /^HTTP\/1\.1 403 [^]*\r\n\r\n/);
  assert.match(head, /^HTTP\/1\.1 200 /);
  assert.match(rest, /^HTTP\/1\.1 403 /);
  s.destroy();
  const big = await waitForAudit(t, (r) => r.event === 'request' && r.path === '/big-connect');
  assert.equal(big?.status, 200, JSON.stringify(big));
  const open = await waitForAudit(t, (r) => r.event === 'tunnel_open' && r.host === 'denied.turret.test');
  assert.equal(open?.code, 'policy_denied', JSON.stringify(open));
});

/** What each phase leaves in the audit log for the connection, sorted. */
const EXPECTED = {
  reset: [
    ['request', 'aborted', 'client_closed'],
    ['tunnel_open', 'aborted', 'client_closed'],
  ],
  // The GET is answered whole; the CONNECT is then answered, and its tunnel ends at once: the client sent no TLS.
  'half-close': [
    ['request', 'completed', null],
    ['tunnel_close', 'aborted', 'client_tls_failed'],
    ['tunnel_open', 'allowed', null],
  ],
};

for (const phase of ['reset', 'half-close'] as const) {
  it(`an allowed CONNECT pipelined behind a GET whose body is still coming, the client does a ${phase} while it waits: one record per exchange and tunnel end`, async () => {
    const s = net.connect(t.port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    const client = `127.0.0.1:${s.localPort}`;
    const path = `/held-${phase}`;
    s.write(
      proxiedGet(`ws.turret.test:${upPort}`, path, auth) + `CONNECT tls.turret.test:${upPort} HTTP/1.1\r\nHost: tls.turret.test:${upPort}\r\nProxy-Authorization: ${auth}\r\n\r\n`,
    );
    await until(() => held.length > 0, 'the GET at the upstream');
    if (phase === 'reset') s.resetAndDestroy();
    else s.end();
    const mine = (): string =>
      JSON.stringify(
        t
          .audit()
          .filter((r) => r.client === client)
          .map((r) => [r.event, r.outcome, r.code ?? null])
          .sort(),
      );
    if (phase === 'half-close') held.shift()?.end('56789');
    await until(() => mine() === JSON.stringify(EXPECTED[phase]), mine);
    held.shift()?.destroy();
    assert.equal(t.proc.exitCode, null);
  });
}
