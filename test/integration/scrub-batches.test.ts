/**
 * The scrubbed response path with per-turn batching (src/scrub/stream.ts, issue #15) through the
 * real proxy (dist/), a local HTTPS upstream and real clients: a known secret placed across every
 * 16 KiB record boundary and every 64 KiB batch boundary, sent in upstream writes of odd sizes;
 * a client that stops reading until the upstream is blocked, then reads the rest; an upstream that
 * dies in the middle of a secret. Every byte that reaches a client and every output is grepped
 * for the secret.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import path from 'node:path';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { curl } from '../helpers/curl.js';
import { agentToken, basic, rawConnect } from '../helpers/ops.js';
import { startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK } from '../helpers/rules.js';

const SECRET = `fake_batch_${randomBytes(20).toString('hex')}`;
const MARK = '[REDACTED:secret:batch-token]';
const LINE = 'the quick brown fox jumps over the lazy dog; nothing to see here\n';

/** `size` bytes of plain text with the secret placed across every 16 KiB boundary, at a different
 * offset each time (1 … length − 1 bytes before the boundary), and across every 64 KiB one. */
function body(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += LINE.length) b.write(LINE, i, 'latin1');
  for (let k = 1, edge = 16384; edge + SECRET.length < size; k++, edge += 16384) {
    const before = 1 + (k % (SECRET.length - 1));
    b.write(SECRET, edge - before, 'latin1');
  }
  return b;
}
const want = (b: Buffer): string => b.toString('latin1').split(SECRET).join(MARK);
/** Upstream write sizes: a full batch, one record, tiny and odd pieces. */
const SIZES = [65536, 16384, 1, 7, 4000, 30001, 16383, 65537, 100];

describe('scrubbed responses batched per turn: boundaries, a stalled reader, a dying upstream', () => {
  let up: Upstream;
  let t: TurretProc;
  let args: string[];
  let auth: string;
  const seen: string[] = [];
  const events = new EventEmitter();
  const BIG = body(3 * 1024 * 1024 + 777);
  const HUGE = body(48 * 1024 * 1024);

  before(async () => {
    up = await startUpstream({
      tls: true,
      handler: (req, res) => {
        const send = (b: Buffer, sizes: readonly number[]): void => {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length });
          let off = 0;
          let n = 0;
          const pump = (): void => {
            while (off < b.length) {
              const c = b.subarray(off, off + (sizes[n++ % sizes.length] ?? 1));
              off += c.length;
              if (!res.write(c)) {
                events.emit('blocked');
                return void res.once('drain', pump);
              }
            }
            res.end();
            events.emit('finished');
          };
          pump();
        };
        if (req.url === '/odd') return send(BIG, SIZES);
        if (req.url === '/huge') return send(HUGE, [65536]);
        if (req.url === '/cut') {
          // Announces 2 MB, sends 300 KB that end in the middle of the secret, then dies.
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 * 1024 * 1024 });
          res.write(BIG.subarray(0, 300_000));
          res.write(`{"tok":"${SECRET.slice(0, 20)}`);
          setImmediate(() => res.socket?.destroy());
          return;
        }
        res.writeHead(404).end();
      },
    });
    t = await startTurret({
      env: { BATCH_TOKEN: SECRET },
      rules: {
        'r.yaml': {
          agents: ['agent-a'],
          secrets: [{ name: 'batch-token', from: { env: 'BATCH_TOKEN' }, hosts: ['up.turret.test:*'] }],
          rules: [{ name: 'up', methods: ['read'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
          local: ['up.turret.test'],
        },
      },
    });
    const token = await agentToken(t, 'agent-a');
    auth = basic('agent-a', token);
    args = ['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `agent-a:${token}`, '--cacert', path.join(t.caDir, 'ca.crt')];
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    for (const s of [...seen, t?.auditText() ?? '', t?.stderr() ?? '', t?.stdout() ?? '']) assert.ok(!s.includes(SECRET), 'the secret appears in no output');
  });

  it('a secret across every record and batch boundary, upstream writes of odd sizes: the body arrives whole, every secret redacted', async () => {
    const r = await curl([...args, `https://up.turret.test:${up.port}/odd`]);
    seen.push(r.raw, r.stderr);
    assert.equal(r.status, 200);
    assert.equal(r.body, want(BIG));
    assert.ok(r.body.split(MARK).length - 1 >= 190, 'every placed secret was redacted');
  });

  it('a client that stops reading until the upstream is blocked, then reads the rest: everything arrives, scrubbed', async () => {
    const c = await rawConnect(t.port, `up.turret.test:${up.port}`, auth);
    assert.equal(c.status, 200);
    const ca = readFileSync(path.join(t.caDir, 'ca.crt'));
    const sock = tls.connect({ socket: c.socket, servername: 'up.turret.test', ca });
    await once(sock, 'secureConnect');
    // No agent: the request runs on this socket (TLS inside the tunnel) and nothing else.
    const req = http.request({ path: '/huge', headers: { host: `up.turret.test:${up.port}` }, createConnection: () => sock });
    req.end();
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    assert.equal(res.statusCode, 200);
    res.pause(); // the client stops reading: TCP windows and every buffer on the way fill up
    const stalled = await Promise.race([once(events, 'blocked').then(() => true), once(events, 'finished').then(() => false)]);
    assert.ok(stalled, 'the upstream was held back by the stalled client (backpressure through the scrubber)');
    const got: Buffer[] = [];
    res.on('data', (d: Buffer) => got.push(d));
    res.resume();
    await once(res, 'end');
    sock.destroy();
    const text = Buffer.concat(got).toString('latin1');
    assert.ok(!text.includes(SECRET));
    assert.equal(text.length, want(HUGE).length, 'the whole body arrived');
    assert.ok(text === want(HUGE), 'the body is the scrubbed original');
  });

  it('an upstream that dies in the middle of a secret: the response is aborted, no part of the secret or its tail arrives, one record', async () => {
    const r = await curl([...args, `https://up.turret.test:${up.port}/cut`]);
    seen.push(r.raw, r.stderr);
    assert.notEqual(r.code, 0, 'curl sees an incomplete response');
    assert.ok(!r.raw.includes(SECRET.slice(0, 20)), 'the held half of the secret never reaches the client');
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/cut');
    assert.equal(rec?.outcome, 'failed');
    assert.match(String(rec?.code), /^upstream_/);
    assert.equal(t.audit().filter((x) => x.event === 'request' && x.path === '/cut').length, 1);
  });
});
