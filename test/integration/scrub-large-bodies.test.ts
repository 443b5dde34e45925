/**
 * Large scrubbed bodies through the real proxy (dist/), a local HTTPS upstream and curl: bodies
 * declared ≥ 1 MiB (written for the scan worker that was measured and reverted, docs/benchmarks.md
 * "Scrubbing → Eighth round"; the cases hold for every path) with a scan limit
 * (`scrub.max_body_scan`) whose rest arrives in several chunks at once; an upstream that declares
 * more than it sends; a HEAD with a large Content-Length; a gzip body whose compressed length is
 * ≥ 1 MiB (the decoded body is what is scanned). Every exchange: one audit record, its real cause;
 * the secret in no output that was scanned.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import path from 'node:path';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { curl } from '../helpers/curl.js';
import { agentToken, basic, rawConnect } from '../helpers/ops.js';
import { startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const SECRET = `fake_offrev_${randomBytes(20).toString('hex')}`;
const MARK = '[REDACTED:secret:big-token]';
const LIMIT = 1024 * 1024;

/** Lines of random hex (gzip cannot shrink it below half) with the secret every ~16 KiB. */
function body(size: number): Buffer {
  const b = Buffer.from(
    randomBytes(Math.ceil(size / 2))
      .toString('hex')
      .slice(0, size),
    'latin1',
  );
  for (let i = 100; i < size; i += 100) b[i] = 0x0a;
  for (let k = 1, edge = 16384; edge + SECRET.length < size; k++, edge += 16384) b.write(SECRET, edge - (1 + (k % (SECRET.length - 1))), 'latin1');
  return b;
}
const BIG = body(3 * 1024 * 1024 + 777);
const GZ = gzipSync(BIG);
const scrubbed = (b: Buffer): string => b.toString('latin1').split(SECRET).join(MARK);

function rules(scrub?: Record<string, unknown>): RuleFile {
  return {
    agents: ['agent-a'],
    secrets: [{ name: 'big-token', from: { env: 'BIG_TOKEN' }, hosts: ['up.turret.test:*'] }],
    rules: [{ name: 'up', methods: ['read'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
    local: ['up.turret.test'],
    ...(scrub ? { scrub } : {}),
  };
}

describe('large scrubbed bodies: scan limit, Content-Length lies, HEAD, gzip, stop, client gone', () => {
  let up: Upstream;
  let t: TurretProc;
  let limited: TurretProc;
  const seen: string[] = [];
  const events = new EventEmitter();
  const get = async (tp: TurretProc, p: string, extra: string[] = []) => {
    const token = await agentToken(tp, 'agent-a');
    const args = ['-x', `http://127.0.0.1:${tp.port}`, '--proxy-user', `agent-a:${token}`, '--cacert', path.join(tp.caDir, 'ca.crt')];
    return curl([...args, ...extra, `https://up.turret.test:${up.port}${p}`]);
  };

  before(async () => {
    up = await startUpstream({
      handler: (req, res) => {
        const gz = req.url === '/gzip';
        const b = gz ? GZ : BIG;
        // /short declares the whole body, sends 1.25 MiB (ending inside a secret) and closes.
        const stop = req.url === '/short' ? 1.25 * 1024 * 1024 : b.length;
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length, ...(gz ? { 'content-encoding': 'gzip' } : {}) });
        if (req.method === 'HEAD') return void res.end();
        // /stall sends 1.5 MiB of the declared 3 MiB and then nothing (until the proxy goes).
        if (req.url?.startsWith('/stall')) return void res.write(b.subarray(0, 1.5 * 1024 * 1024), () => events.emit('stalled'));
        let off = 0;
        const pump = (): void => {
          while (off < stop) {
            const c = b.subarray(off, Math.min(stop, off + 30001));
            off += c.length;
            if (!res.write(c)) return void res.once('drain', pump);
          }
          if (stop < b.length) res.write(SECRET.slice(0, 12), () => res.socket?.destroy());
          else res.end();
        };
        pump();
      },
    });
    const env = { BIG_TOKEN: SECRET };
    t = await startTurret({ env, rules: { 'r.yaml': rules() } });
    limited = await startTurret({ env, rules: { 'r.yaml': rules({ max_body_scan: LIMIT }) } });
  });

  after(async () => {
    await t?.stop();
    await limited?.stop();
    await up?.close();
    for (const tp of [t, limited]) seen.push(tp?.auditText() ?? '', tp?.stderr() ?? '', tp?.stdout() ?? '');
    for (const s of seen) assert.ok(!s.includes(SECRET), 'the secret appears in an output');
  });

  it('a scan limit: the first max_body_scan bytes scanned, every byte after it passes, in order; one completed record', async () => {
    const r = await get(limited, '/big');
    seen.push(r.stderr);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.status, 200);
    // The operator chose to leave the rest unscanned: it holds the secret, so the body is not grepped.
    const want = scrubbed(BIG.subarray(0, LIMIT)) + BIG.subarray(LIMIT).toString('latin1');
    assert.equal(r.body.length, want.length);
    assert.ok(r.body === want, 'the body is the scanned prefix and the unscanned rest');
    const rec = await waitForAudit(limited, (x) => x.event === 'request' && x.path === '/big');
    assert.equal(rec?.outcome, 'completed');
  });

  it('declares 3 MiB, sends 1.25 MiB and closes: aborted, a scanned prefix, one record upstream_closed', async () => {
    const r = await get(t, '/short');
    seen.push(r.raw, r.stderr);
    assert.notEqual(r.code, 0, 'curl sees an incomplete response');
    assert.ok(scrubbed(BIG).startsWith(r.body), 'what was sent is a scanned prefix');
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/short');
    assert.equal(rec?.outcome, 'failed');
    assert.equal(rec?.code, 'upstream_closed', `cause ${String(rec?.code)} (${String(rec?.reason)})`);
    assert.equal(t.audit().filter((x) => x.event === 'request' && x.path === '/short').length, 1);
  });

  it('a HEAD with a 3 MiB Content-Length: the head only, one completed record', async () => {
    const r = await get(t, '/head', ['-I']);
    seen.push(r.raw, r.stderr);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.status, 200);
    assert.equal(r.body, '');
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/head');
    assert.equal(rec?.outcome, 'completed');
  });

  it('gzip, compressed length ≥ 1 MiB: the decoded body is scanned whole', async () => {
    assert.ok(GZ.length >= 1024 * 1024, `compressed ${GZ.length}`);
    const r = await get(t, '/gzip');
    seen.push(r.raw, r.stderr);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.status, 200);
    assert.ok(r.body === scrubbed(BIG), 'the decoded body, scrubbed');
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/gzip');
    assert.equal(rec?.outcome, 'completed');
    assert.equal(rec?.redactions, BIG.toString('latin1').split(SECRET).length - 1);
  });

  it('stop with a large scrubbed stream open: the process exits by itself, the response is aborted, one record', async () => {
    const tp = await startTurret({ env: { BIG_TOKEN: SECRET }, rules: { 'r.yaml': rules() }, args: ['--drain-timeout', '1s'] });
    const stalled = once(events, 'stalled');
    const pending = get(tp, '/stall');
    await stalled;
    await tp.stop();
    const r = await pending;
    seen.push(r.raw, r.stderr, tp.auditText(), tp.stderr(), tp.stdout());
    assert.equal(tp.proc.signalCode, null, 'not killed: the stream did not keep it alive');
    assert.equal(tp.proc.exitCode, 0);
    assert.notEqual(r.code, 0, 'curl sees an incomplete response');
    assert.ok(scrubbed(BIG).startsWith(r.body), 'what was sent is a scanned prefix');
    const recs = tp.audit().filter((x) => x.event === 'request' && x.path === '/stall');
    assert.equal(recs.length, 1, JSON.stringify(recs));
    assert.equal(recs[0]?.outcome, 'aborted');
    assert.equal(recs[0]?.code, 'drain_deadline');
  });

  it('the client goes away mid-body: one record, client_closed; the next large body is exact', async () => {
    const c = await rawConnect(t.port, `up.turret.test:${up.port}`, basic('agent-a', await agentToken(t, 'agent-a')));
    assert.equal(c.status, 200);
    const sock = tls.connect({ socket: c.socket, servername: 'up.turret.test', ca: readFileSync(path.join(t.caDir, 'ca.crt')) });
    await once(sock, 'secureConnect');
    const req = http.request({ path: '/stall?gone', headers: { host: `up.turret.test:${up.port}` }, createConnection: () => sock });
    req.end();
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    assert.equal(res.statusCode, 200);
    const [first] = (await once(res, 'data')) as [Buffer];
    assert.ok(!first.includes(SECRET));
    sock.destroy();
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/stall?gone');
    assert.equal(rec?.outcome, 'aborted', JSON.stringify(rec));
    assert.equal(rec?.code, 'client_closed');
    const r = await get(t, '/big');
    seen.push(r.raw, r.stderr);
    assert.ok(r.body === scrubbed(BIG), 'the next large body is scanned whole');
    await waitForAudit(t, (x) => x.event === 'request' && x.path === '/big');
    assert.equal(t.audit().filter((x) => x.event === 'request' && x.path === '/stall?gone').length, 1, 'one record');
  });
});
