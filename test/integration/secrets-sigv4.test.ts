/**
 * AWS SigV4 re-signing, proven against a local HTTPS server that verifies SigV4 with the REAL
 * key (and rejects anything else). Agents hold handles as AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY and sign as usual: curl --aws-sigv4 (signed payload, and a non-S3
 * service whose payload hash Turret must compute), and a Node program using @smithy/signature-v4
 * for UNSIGNED-PAYLOAD, aws-chunked streaming and a presigned URL, each started by turret run.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { verifySigV4, type Verdict } from '../helpers/sigv4.js';
import { cleanEnv, ROOT, runArgs, runCli, startTurret, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const REAL_ID = `AKIAFAKE${randomBytes(6).toString('hex').toUpperCase()}`;
const REAL_KEY = `fake/aws+${randomBytes(18).toString('base64')}`;
const ENV = { T_AWS_ID: REAL_ID, T_AWS_KEY: REAL_KEY, TURRET_ADMIN: 'off' };

const rules = (): RuleFile => ({
  agents: ['robot'],
  secrets: [
    {
      name: 'aws',
      from: { env: 'T_AWS_KEY' },
      hosts: ['s3.turret.test:*', 'api.turret.test:*'],
      env: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'],
      aws: { access_key_id: { env: 'T_AWS_ID' } },
    },
  ],
  rules: [{ name: 'aws', methods: ['read', 'write'], hosts: ['s3.turret.test:*', 'api.turret.test:*', 'other.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['s3.turret.test', 'api.turret.test', 'other.turret.test'],
});

const NODE_AGENT = (port: number): string => `
import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from ${JSON.stringify(path.join(ROOT, 'node_modules/@smithy/signature-v4/dist-cjs/index.js'))};
import { EnvHttpProxyAgent, request } from ${JSON.stringify(path.join(ROOT, 'node_modules/undici/index.js'))};
class Sha256 { constructor(s) { this.h = s === undefined ? createHash('sha256') : createHmac('sha256', s); } update(d) { this.h.update(d); } async digest() { return this.h.digest(); } reset() {} }
const creds = { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY };
const signer = new SignatureV4({ credentials: creds, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false });
const host = 's3.turret.test:${port}';
const dispatcher = new EnvHttpProxyAgent();
const send = async (method, p, headers, body) => { const r = await request('https://' + host + p, { method, headers, body, dispatcher }); return r.statusCode + ' ' + (await r.body.text()); };
const date = new Date();
// 1. UNSIGNED-PAYLOAD header-signed PUT
let s = await signer.sign({ method: 'PUT', protocol: 'https:', hostname: host, path: '/bucket/unsigned', query: {}, headers: { host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'content-length': '11' } }, { signingDate: date });
console.log('unsigned', await send('PUT', '/bucket/unsigned', s.headers, 'hello world'));
// 2. aws-chunked streaming upload, chunk signatures made with the handle
const data = Buffer.alloc(70000, 'z');
const chunks = [data.subarray(0, 65536), data.subarray(65536), Buffer.alloc(0)];
const sigLen = (n) => n.toString(16).length + 17 + 64 + 2 + n + 2;
const total = chunks.reduce((a, c) => a + sigLen(c.length), 0);
s = await signer.sign({ method: 'PUT', protocol: 'https:', hostname: host, path: '/bucket/chunked', query: {}, headers: { host, 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(data.length), 'content-length': String(total) } }, { signingDate: date });
const amzDate = s.headers['x-amz-date'];
let key = createHmac('sha256', 'AWS4' + creds.secretAccessKey).update(amzDate.slice(0, 8)).digest();
for (const p of ['us-east-1', 's3', 'aws4_request']) key = createHmac('sha256', key).update(p).digest();
let prev = /Signature=([0-9a-f]{64})/.exec(s.headers.authorization)[1];
const framed = [];
for (const c of chunks) {
  const sts = ['AWS4-HMAC-SHA256-PAYLOAD', amzDate, amzDate.slice(0, 8) + '/us-east-1/s3/aws4_request', prev, createHash('sha256').update('').digest('hex'), createHash('sha256').update(c).digest('hex')].join('\\n');
  prev = createHmac('sha256', key).update(sts).digest('hex');
  framed.push(Buffer.from(c.length.toString(16) + ';chunk-signature=' + prev + '\\r\\n'), c, Buffer.from('\\r\\n'));
}
console.log('chunked', await send('PUT', '/bucket/chunked', s.headers, Buffer.concat(framed)));
// 3. presigned GET
const pre = await signer.presign({ method: 'GET', protocol: 'https:', hostname: host, path: '/bucket/presigned', query: { 'response-content-type': 'text/plain' }, headers: { host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }, { signingDate: date, expiresIn: 300, unsignableHeaders: new Set(['x-amz-content-sha256']), unhoistableHeaders: new Set(['x-amz-content-sha256']) });
const qs = Object.entries(pre.query).map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v)).join('&');
console.log('presigned', await send('GET', '/bucket/presigned?' + qs, {}, undefined));
`;

describe('AWS SigV4 re-signing through turret run', () => {
  let t: TurretProc;
  let up: Upstream;
  const verdicts: Verdict[] = [];
  const outputs: string[] = [];
  const work = mkdtempSync(path.join(tmpdir(), 'turret-sigv4-'));
  chmodSync(work, 0o777); // turret run (root) runs the command as nobody, in a sandbox
  const turretRun = async (cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    const r = await runCli(runArgs(t, 'robot', [], cmd), { cwd: work, env: cleanEnv(ENV) });
    outputs.push(r.stdout, r.stderr);
    return r;
  };

  before(async () => {
    up = await startUpstream({
      handler: (req, res, body) => {
        void verifySigV4(REAL_ID, REAL_KEY, req, body).then((v) => {
          verdicts.push(v);
          res.writeHead(v.ok ? 200 : 403, { 'content-type': 'text/plain' });
          res.end(v.why);
        });
      },
    });
    t = await startTurret({ rules: { 'r.yaml': rules() }, env: ENV });
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    const all = [outputs.join('\n'), t.stdout(), t.stderr(), t.auditText()].join('\n');
    assert.ok(!all.includes(REAL_KEY), 'the real secret key never appears');
    assert.ok(!up.received.some((r) => JSON.stringify(r).includes('trt_')), 'no handle reached the AWS-like server');
  });

  it('curl --aws-sigv4: S3 GET and PUT, and a POST to a service whose payload Turret hashes', async () => {
    const base = `https://%s.turret.test:${up.port}`;
    const r = await turretRun([
      'sh',
      '-c',
      [
        `curl -sS --fail-with-body --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" ${base.replace('%s', 's3')}/bucket/key`,
        `curl -sS --fail-with-body --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -X PUT --data-binary 'object body' ${base.replace('%s', 's3')}/bucket/put`,
        `curl -sS --fail-with-body --aws-sigv4 aws:amz:eu-west-1:execute-api --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H 'content-type: application/json' --data-binary '{"a":1}' ${base.replace('%s', 'api')}/v1/items`,
      ].join(' && echo && '),
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr + JSON.stringify(verdicts));
    assert.deepEqual(
      verdicts.map((v) => [v.url, v.ok]),
      [
        ['/bucket/key', true],
        ['/bucket/put', true],
        ['/v1/items', true],
      ],
      JSON.stringify(verdicts),
    );
    assert.equal(up.received.at(-1)?.body, '{"a":1}');
  });

  it('Node + @smithy/signature-v4: UNSIGNED-PAYLOAD, aws-chunked streaming and a presigned URL', async () => {
    const js = path.join(work, 'agent.mjs');
    writeFileSync(js, NODE_AGENT(up.port));
    const before = verdicts.length;
    const r = await turretRun([process.execPath, js]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^unsigned 200 header ok \(UNSIGNED-PAYLOAD\)$/m);
    assert.match(r.stdout, /^chunked 200 chunked ok 70000$/m);
    assert.match(r.stdout, /^presigned 200 presigned ok$/m);
    assert.equal(verdicts.length - before, 3);
  });

  it('a payload Turret must hash larger than the buffered-body limit (8 MiB) is refused with 413, not buffered', async () => {
    const big = path.join(work, 'big.bin');
    writeFileSync(big, Buffer.alloc(9 * 1024 * 1024, 'z'));
    const before = up.received.length;
    const r = await turretRun([
      'sh',
      '-c',
      `curl -sS -o /dev/null -w '%{http_code} %header{x-turret-error}' --aws-sigv4 aws:amz:eu-west-1:execute-api --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" --data-binary @${big} https://api.turret.test:${up.port}/v1/big`,
    ]);
    assert.equal(r.stdout.trim(), '413 body_too_large');
    assert.equal(up.received.length, before, 'nothing was sent upstream');
  });

  it('a SigV4 handle toward an unbound host is a misuse', async () => {
    const r = await turretRun([
      'sh',
      '-c',
      `curl -sS -o /dev/null -w '%{http_code} %header{x-turret-error}' --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" https://other.turret.test:${up.port}/x`,
    ]);
    assert.equal(r.stdout.trim(), '403 handle_host_not_bound');
  });
});
