/**
 * The scrubber's WebAssembly loops through the real proxy (dist/), real curl, a local HTTPS
 * upstream: response bodies built so a secret's spellings sit at the thresholds where the loops
 * change (1 KiB, the 64 KiB page, the 128 KiB segment seam) and are split across the upstream's
 * writes (1, 7, 4095, 4096, 65535, 65536 bytes); a small body (one scrubBuffer call); a 512 KiB
 * MIME body; a non-ASCII secret in another ASCII case; an upstream pause after the first line of
 * a wrapped secret (the idle flush). Every output (responses, audit, logs) is
 * grepped for every secret. A second turret runs with a preload that makes the WebAssembly
 * keyword loop trap mid-response: the response must fail closed (no unscrubbed byte, one audit
 * record, the process lives on).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type http from 'node:http';
import path from 'node:path';
import { curl } from '../helpers/curl.js';
import { agentToken, cleanEnv, ROOT, startTurret, until, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const SECRET = `fake_wr_${randomBytes(16).toString('hex')}`;
const WIDE = `fakeé€${randomBytes(8).toString('hex')}`;
const SEGMENT = 128 * 1024;
/** The seam body's last bytes (the filler repeats: this does not). */
const TAIL = `\n<end ${randomBytes(4).toString('hex')}>\n`;
const upper = (t: string): string => t.replace(/[a-z]+/g, (m) => m.toUpperCase());
const lower = (t: string): string => t.replace(/[A-Z]+/g, (m) => m.toLowerCase());
/** Spellings that must not survive, as latin1 text (compared ignoring ASCII case). */
const BAD = [SECRET, Buffer.from(WIDE).toString('latin1'), Buffer.from(SECRET).toString('hex'), Buffer.from(SECRET).toString('base64').slice(0, 40)];

function rules(): RuleFile {
  return {
    agents: ['agent-a'],
    secrets: [
      { name: 'ascii', from: { env: 'TEST_WR_ASCII' }, hosts: ['nowhere.turret.test:*'] },
      { name: 'wide', from: { env: 'TEST_WR_WIDE' }, hosts: ['nowhere.turret.test:*'] },
    ],
    rules: [{ name: 'all', methods: ['read'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
    local: ['up.turret.test'],
  };
}

function filler(n: number): Buffer {
  const unit = '{"id": 12, "path": "/api/token?scope=repo", "note": "pat sk- akia x"},\n';
  return Buffer.from(unit.repeat(Math.ceil(n / unit.length)).slice(0, n), 'latin1');
}

/** ~300 KiB: spellings at 1 KiB, the 64 KiB page, the segment seams, and a wide secret upper-cased. */
function seamBody(): Buffer {
  const b = filler(300_000);
  const put = (at: number, text: string, enc: BufferEncoding = 'latin1'): void => void b.write(text, at, enc);
  put(1024 - 5, SECRET);
  put(65536 - 9, Buffer.from(SECRET).toString('hex'));
  put(SEGMENT - 17, SECRET);
  put(SEGMENT + 4000, Buffer.from(SECRET).toString('base64'));
  put(2 * SEGMENT - 3, upper(SECRET));
  put(200_000, upper(WIDE), 'utf8');
  put(250_000, WIDE, 'utf8');
  put(b.length - TAIL.length, TAIL);
  return b;
}

/** Writes `body` in pieces of the sizes given, in turn, waiting for the socket between them. */
async function writeInPieces(res: http.ServerResponse, body: Buffer, sizes: readonly number[]): Promise<void> {
  let k = 0;
  for (let i = 0; i < body.length; k++) {
    const n = sizes[k % sizes.length] ?? 1;
    if (!res.write(body.subarray(i, i + n))) await new Promise((r) => res.once('drain', r));
    i += n;
  }
  res.end();
}

const CRLF = '\r\n';
/** A secret in base64 wrapped at 44 columns (not 40: a lone 40-character line is an aws key). */
const WRAPPED =
  Buffer.from(`data: ${SECRET} :end of the attachment`)
    .toString('base64')
    .match(/.{1,44}/g) ?? [];
let releaseRest: () => void = () => undefined;

function mimeBody(n: number): Buffer {
  const wrap = (t: string): string => (t.match(/.{1,76}/g) ?? []).join('\r\n');
  const secret = wrap(Buffer.from(`attachment:${SECRET}:end`).toString('base64'));
  const text = wrap(randomBytes(Math.ceil(n * 0.75)).toString('base64'));
  return Buffer.from(`${secret}\r\n${text}`.slice(0, n - secret.length - 2) + `\r\n${secret}`, 'latin1');
}

describe('the WebAssembly scrub loops through the proxy', () => {
  let up: Upstream;
  let t: TurretProc;
  let trap: TurretProc;
  const seen: string[] = [];
  const tokens = new Map<TurretProc, string>();
  const seam = seamBody();

  const curlArgs = (tp: TurretProc): string[] => [
    '-x',
    `http://127.0.0.1:${tp.port}`,
    '--proxy-user',
    `agent-a:${tokens.get(tp) ?? ''}`,
    '--cacert',
    path.join(tp.caDir, 'ca.crt'),
  ];
  const get = async (tp: TurretProc, p: string): Promise<Awaited<ReturnType<typeof curl>>> => {
    const r = await curl([...curlArgs(tp), `https://up.turret.test:${up.port}${p}`]);
    seen.push(r.raw, r.stderr);
    return r;
  };
  const assertClean = (text: string, where: string): void => {
    for (const bad of BAD) assert.ok(!lower(text).includes(lower(bad)), `${where}: ${bad.slice(0, 12)}… survived`);
  };

  before(async () => {
    up = await startUpstream({
      handler: (req, res) => {
        const u = new URL(req.url ?? '/', 'https://x');
        const sizes = (u.searchParams.get('sizes') ?? '65536').split(',').map(Number);
        switch (u.pathname) {
          case '/seam':
            res.writeHead(200, { 'content-type': 'application/json' });
            return void writeInPieces(res, seam, sizes);
          case '/small': {
            const b = filler(3000);
            b.write(SECRET, 1500, 'latin1');
            b.write(upper(WIDE), 2500, 'utf8');
            res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length });
            return res.end(b);
          }
          case '/mime': {
            const b = mimeBody(Number(u.searchParams.get('n')));
            res.writeHead(200, { 'content-type': 'message/rfc822', 'content-length': b.length });
            return void writeInPieces(res, b, sizes);
          }
          case '/paused-mime': {
            // The head and the first line of the wrapped secret; the rest only once the client
            // has the head (the proxy's idle flush sent it), or the client gave up.
            res.writeHead(200, { 'content-type': 'message/rfc822' });
            res.write(`Subject: report${CRLF}${CRLF}${WRAPPED[0]}${CRLF}`);
            void new Promise<void>((r) => {
              releaseRest = r;
              res.once('close', () => r());
            }).then(() => res.end(`${WRAPPED.slice(1).join(CRLF)}${CRLF}`));
            return;
          }
          default:
            res.writeHead(200, { 'content-type': 'text/plain' });
            return res.end('short and clean');
        }
      },
    });
    const env = { TEST_WR_ASCII: SECRET, TEST_WR_WIDE: WIDE };
    // Both turrets (and their agent tokens) at once: start-up is most of this file's time.
    [t, trap] = await Promise.all([
      startTurret({ rules: { 'r.yaml': rules() }, env, args: ['--admin', 'off'] }),
      startTurret({
        rules: { 'r.yaml': rules() },
        env: { ...env, NODE_OPTIONS: `--import ${path.join(ROOT, 'test/fixtures/preload/wasm-trap.mjs')}`, TURRET_TEST_WASM_TRAP_AFTER: '2' },
        args: ['--admin', 'off'],
      }),
    ]);
    const [a, b] = await Promise.all([agentToken(t, 'agent-a'), agentToken(trap, 'agent-a')]);
    tokens.set(t, a).set(trap, b);
  });

  after(async () => {
    await Promise.all([t?.stop(), trap?.stop()]);
    await up?.close();
    for (const tp of [t, trap]) if (tp) seen.push(tp.stdout(), tp.stderr(), tp.auditText());
    const all = seen.join('\n');
    for (const bad of BAD) assert.ok(!lower(all).includes(lower(bad)), 'no response, audit record or log line holds a spelling of a secret');
  });

  it('a streamed body with spellings at the thresholds, split across upstream writes of odd sizes', async () => {
    for (const sizes of ['1,7,4095,4096,65535', '65536', '4095', '65535,1,65537']) {
      const r = await get(t, `/seam?sizes=${sizes}`);
      assert.equal(r.status, 200, r.stderr);
      assert.equal(r.code, 0, r.stderr);
      assertClean(r.body, `writes of ${sizes}`);
      // Each spelling became its marker; the rest arrived whole.
      assert.equal(r.body.split('[REDACTED:secret:ascii]').length - 1, 5, `writes of ${sizes}: five ascii spellings replaced`);
      assert.equal(r.body.split('[REDACTED:secret:wide]').length - 1, 2, `writes of ${sizes}: the wide secret, both cases`);
      assert.ok(r.body.endsWith(TAIL), `writes of ${sizes}: the end arrived`);
    }
  });

  it('a small body (one scrubBuffer call on the WebAssembly path) and 512 KiB MIME bodies', async () => {
    const small = await get(t, '/small');
    assert.equal(small.status, 200);
    assertClean(small.body, 'small body');
    assert.ok(small.body.includes('[REDACTED:secret:ascii]') && small.body.includes('[REDACTED:secret:wide]'));
    for (const n of [512 * 1024 - 1, 512 * 1024, 512 * 1024 + 1]) {
      const r = await get(t, `/mime?n=${n}&sizes=65535,4095`);
      assert.equal(r.code, 0, r.stderr);
      const joined = r.body.replace(/\r\n/g, '');
      assert.ok(!joined.includes(Buffer.from(`attachment:${SECRET}:end`).toString('base64').slice(16, 60)), `${n} bytes: the wrapped secret survived`);
      assert.equal(r.body.split('[REDACTED:secret:ascii]').length - 1, 2, `${n} bytes: both wrapped copies replaced`);
    }
    // One audit record per exchange (the writer appends asynchronously: wait for the third).
    const mime = (): number => t.audit().filter((x) => x.event === 'request' && String(x.path).startsWith('/mime')).length;
    await until(
      () => mime() >= 3,
      () => `mime records: ${mime()}`,
    );
    assert.equal(mime(), 3);
  });

  it('an upstream pause after the first line of a wrapped secret does not send its halves out apart (idle flush)', async () => {
    const p = spawn('curl', ['-sS', '-N', '--max-time', '20', '--noproxy', '', ...curlArgs(t), `https://up.turret.test:${up.port}/paused-mime`], { env: cleanEnv() });
    let out = '';
    let headAt = 0;
    p.stdout.on('data', (c: Buffer) => {
      out += c.toString('latin1');
      if (!headAt && out.includes('Subject: report')) {
        headAt = out.length;
        releaseRest();
      }
    });
    await once(p, 'close');
    seen.push(out);
    assert.ok(headAt > 0, 'the head arrived while the upstream waited (idle flush)');
    const joined = out.replace(/\r\n/g, '');
    for (const m of joined.matchAll(/[A-Za-z0-9+/]{8,}/g))
      for (let o = 0; o < 4; o++) assert.ok(!Buffer.from(m[0].slice(o), 'base64').toString('latin1').includes(SECRET), `decodable: ${out}`);
    assert.ok(out.includes('[REDACTED:secret:ascii]'), out);
  });

  it('the keyword loop trapping mid-response fails closed: nothing unscrubbed, one audit record each, the proxy lives on', async () => {
    // The first two WebAssembly calls succeed; every later one traps.
    const streamed = await get(trap, '/seam?sizes=4095');
    assert.notEqual(streamed.code, 0, 'the client sees the response cut, not a complete one');
    assertClean(streamed.raw, 'streamed body, trap');
    assert.ok(!streamed.raw.includes(TAIL), 'the body did not arrive whole');
    const small = await get(trap, '/small');
    assertClean(small.raw, 'small body, trap');
    assert.notEqual(small.status, 200, `small body, trap: status ${small.status}`);
    // A body under 1 KiB takes the JavaScript loop: the proxy still serves.
    const ok = await get(trap, '/clean');
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'short and clean');
    for (const p of ['/seam', '/small', '/clean']) {
      const rec = await waitForAudit(trap, (x) => JSON.stringify(x).includes(p));
      assert.ok(rec, `${p}: audited`);
    }
    const audit = trap.audit().map((x) => JSON.stringify(x));
    for (const p of ['/seam', '/small', '/clean']) assert.equal(audit.filter((x) => x.includes(p)).length, 1, `${p}: exactly one audit record`);
    // The real cause: the proxy's own scrubber, not the upstream (which answered in full).
    for (const p of ['/seam', '/small']) {
      const rec = trap.audit().find((x) => JSON.stringify(x).includes(p));
      assert.equal(rec?.code, 'internal_error', `${p}: cause ${String(rec?.code)} (${String(rec?.reason)})`);
      assert.equal(rec?.outcome, 'failed');
    }
    assert.equal(small.status, 500, 'the small body: the proxy failed, not the upstream');
    assert.equal(trap.proc.exitCode, null, 'the proxy is still running');
  });

  it('the keyword loop trapping in the outbound check (a 2 KiB URL): a 500 internal_error that does not echo the URL, one audit record, the proxy lives on', async () => {
    // The outbound check scans the URL as sent (≥ 1 KiB: the WebAssembly loop) and fails closed.
    const long = `/clean?q=${'a'.repeat(2048)}`;
    const r = await get(trap, long);
    assert.equal(r.status, 500, `status ${r.status}: ${r.stderr}`);
    assert.match(r.raw, /x-turret-error: internal_error/i);
    assert.ok(!r.raw.includes('a'.repeat(100)), 'the refusal does not echo the URL it could not scan');
    // Its one record names the real cause (the query's value is not recorded, audit/record.ts).
    const mine = (): Array<Record<string, unknown>> => trap.audit().filter((x) => x.event === 'request' && x.path === '/clean?q=');
    await until(
      () => mine().length >= 1,
      () => `records: ${mine().length}`,
    );
    assert.equal(mine().length, 1);
    assert.equal(mine()[0]?.code, 'internal_error');
    assert.equal(mine()[0]?.status, 500);
    // The proxy still answers (a short, clean response takes the JavaScript loop).
    const ok = await get(trap, '/clean');
    assert.equal(ok.status, 200);
    assert.equal(trap.proc.exitCode, null, 'the proxy is still running');
  });
});
