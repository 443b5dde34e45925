/**
 * Large bodies (declared Content-Length ≥ 1 MiB) scanned on the scan worker (src/scrub/offload.ts)
 * through the real proxy (dist/), a local HTTPS upstream and curl: a known secret across every
 * record and batch boundary; an injected secret echoed back becomes the agent's handle; a
 * handle-shaped token that does not open with Turret's key is redacted; a worker that dies in the
 * middle of a body (the operator-only test hook TURRET_TEST_SCAN_WORKER_EXIT_AFTER) aborts that
 * response, writes one audit record naming the proxy's scrubber (internal_error), and the next
 * large body is scanned by a new worker. Every output is grepped for the secrets.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { curl } from '../helpers/curl.js';
import { agentToken } from '../helpers/ops.js';
import { startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const SECRET = `fake_off_${randomBytes(20).toString('hex')}`;
const INJECTED = `fake_inj_${randomBytes(16).toString('hex')}`;
const MARK = '[REDACTED:secret:big-token]';
// Handle-shaped, with an AWS-secret-shaped run (40 mixed-case alphanumerics), not sealed with the key.
const RUN = `Zq3Xb7Kp2Lm9Nw4Rt6Yv8Ua1${randomBytes(8).toString('hex').toUpperCase()}`;
const FORGED = `trt_AbC-_${RUN}-xYz_0123456789abcdef`;
const LINE = 'the quick brown fox jumps over the lazy dog; nothing to see here\n';

function body(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += LINE.length) b.write(LINE, i, 'latin1');
  for (let k = 1, edge = 16384; edge + SECRET.length < size; k++, edge += 16384) b.write(SECRET, edge - (1 + (k % (SECRET.length - 1))), 'latin1');
  return b;
}
const BIG = body(3 * 1024 * 1024 + 777);
const want = (b: Buffer): string => b.toString('latin1').split(SECRET).join(MARK);

function rules(): RuleFile {
  return {
    agents: ['agent-a'],
    secrets: [
      { name: 'big-token', from: { env: 'BIG_TOKEN' }, hosts: ['up.turret.test:*'] },
      { name: 'inj-token', from: { env: 'INJ_TOKEN' }, hosts: ['up.turret.test:*'] },
    ],
    rules: [{ name: 'up', methods: ['read'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
    local: ['up.turret.test'],
  };
}

describe('large scrubbed bodies scanned on the scan worker', () => {
  let up: Upstream;
  let t: TurretProc;
  let dying: TurretProc;
  const seen: string[] = [];
  const args = async (tp: TurretProc): Promise<string[]> => {
    const token = await agentToken(tp, 'agent-a');
    return ['-x', `http://127.0.0.1:${tp.port}`, '--proxy-user', `agent-a:${token}`, '--cacert', path.join(tp.caDir, 'ca.crt')];
  };
  const get = async (tp: TurretProc, p: string, extra: string[] = []) => {
    const r = await curl([...(await args(tp)), ...extra, `https://up.turret.test:${up.port}${p}`]);
    seen.push(r.raw, r.stderr);
    return r;
  };

  before(async () => {
    up = await startUpstream({
      handler: (req, res) => {
        const tail = Buffer.from(`{"echo":"${String(req.headers.authorization ?? '')}","forged":"${FORGED}"}\n`);
        const b = req.url === '/echo' ? Buffer.concat([BIG, tail]) : BIG;
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length });
        let off = 0;
        const pump = (): void => {
          while (off < b.length) {
            const c = b.subarray(off, off + 30001);
            off += c.length;
            if (!res.write(c)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      },
    });
    const env = { BIG_TOKEN: SECRET, INJ_TOKEN: INJECTED };
    t = await startTurret({ env, rules: { 'r.yaml': rules() } });
    // The first scan worker of this turret exits once it was given 1.5 MiB.
    dying = await startTurret({ env: { ...env, TURRET_TEST_SCAN_WORKER_EXIT_AFTER: String(1.5 * 1024 * 1024) }, rules: { 'r.yaml': rules() } });
  });

  after(async () => {
    await t?.stop();
    await dying?.stop();
    await up?.close();
    for (const tp of [t, dying]) seen.push(tp?.auditText() ?? '', tp?.stderr() ?? '', tp?.stdout() ?? '');
    for (const s of seen) for (const x of [SECRET, INJECTED, RUN]) assert.ok(!s.includes(x), `${x.slice(0, 9)}… appears in an output`);
  });

  it('a secret across every boundary of a 3 MiB body: the body arrives whole, every secret redacted', async () => {
    const r = await get(t, '/big');
    assert.equal(r.status, 200);
    assert.ok(r.body === want(BIG), 'the body is the scrubbed original');
    const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === '/big');
    assert.equal(rec?.outcome, 'completed');
    assert.equal(rec?.redactions, BIG.toString('latin1').split(SECRET).length - 1);
  });

  it('an injected secret echoed back becomes the handle; a handle-shaped token not sealed with the key is redacted', async () => {
    const h = (await t.cli(['handle', 'issue', '--agent', 'agent-a', '--secret', 'inj-token', '--ttl', '1h'])).stdout.trim();
    const r = await get(t, '/echo', ['-H', `Authorization: Bearer ${h}`]);
    assert.equal(r.status, 200);
    const tail = r.body.slice(want(BIG).length);
    assert.ok(r.body.startsWith(want(BIG)));
    assert.equal(tail, `{"echo":"Bearer ${h}","forged":"trt_AbC-_[REDACTED:aws-secret-access-key]-xYz_0123456789abcdef"}\n`);
  });

  it('a worker that dies mid-body: the response is aborted, one record names the scrubber, the next large body works', async () => {
    const r = await get(dying, '/big');
    assert.notEqual(r.code, 0, 'curl sees an incomplete response');
    assert.ok(r.body.length < want(BIG).length, 'not everything was sent');
    assert.ok(want(BIG).startsWith(r.body), 'what was sent is a scanned prefix');
    const rec = await waitForAudit(dying, (x) => x.event === 'request' && x.path === '/big');
    assert.equal(rec?.outcome, 'failed');
    assert.equal(rec?.code, 'internal_error', `cause ${String(rec?.code)} (${String(rec?.reason)})`);
    assert.equal(dying.proc.exitCode, null, 'the proxy is still running');
    const next = await get(dying, '/big');
    assert.equal(next.status, 200);
    assert.ok(next.body === want(BIG), 'the next large body is scanned by a new worker');
    await waitForAudit(dying, (x) => x.event === 'request' && x.path === '/big' && x.outcome === 'completed');
    assert.equal(dying.audit().filter((x) => x.event === 'request' && x.path === '/big').length, 2, 'one record per exchange');
  });
});
