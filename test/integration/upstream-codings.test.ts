/**
 * Response codings from a hostile upstream (issue #10, item 3), through the real proxy with real
 * curl over an intercepted TLS tunnel. The bound host echoes the injected secret inside a body
 * that is coded in a way Turret cannot undo (a transfer coding other than chunked, zstd,
 * compress, a stack) — each ends in 502 `upstream_coding_unsupported` with one audit record,
 * never in a relayed body. Turret asks upstream only for codings it can decode. Every output the
 * agent can see is grepped for the secret raw, in base64 and percent-encoded.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import zlib from 'node:zlib';
import { curl, type CurlResult } from '../helpers/curl.js';
import { agentToken, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { startRawUpstream, type RawUpstream } from '../helpers/raw-upstream.js';
import { header } from '../helpers/http-wire.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const SECRET = `fake_coding/${randomBytes(16).toString('hex')}+x`;
const FORMS = [SECRET, Buffer.from(SECRET).toString('base64'), encodeURIComponent(SECRET), encodeURIComponent(SECRET).toLowerCase()];

function rules(): RuleFile {
  return {
    agents: ['agent-a'],
    secrets: [{ name: 'api', from: { env: 'TEST_CODING_TOKEN' }, hosts: ['echo.turret.test:*'] }],
    rules: [{ name: 'echo', methods: ['read'], hosts: ['echo.turret.test:*'], unsafe_addresses: LOOPBACK }],
    local: ['echo.turret.test'],
  };
}

const chunk = (b: Buffer): Buffer => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n0\r\n\r\n')]);

/** The answers, by X-Case: each one carries the echoed Authorization value inside a coded body. */
const ANSWERS: Record<string, (auth: string) => Buffer> = {
  'te-gzip': (a) => Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip\r\n\r\n'), zlib.gzipSync(`auth=${a}`)]),
  'te-gzip-chunked': (a) =>
    Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'), chunk(zlib.gzipSync(`auth=${a}`))]),
  'te-two-lines': (a) =>
    Buffer.concat([
      Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n'),
      chunk(zlib.deflateSync(`auth=${a}`)),
    ]),
  'ce-zstd': (a) => Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: zstd\r\nConnection: close\r\n\r\n'), zlib.gzipSync(`auth=${a}`)]),
  'ce-compress': (a) =>
    Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: compress\r\nConnection: close\r\n\r\n'), zlib.gzipSync(`auth=${a}`)]),
  'ce-stack-lines': (a) => {
    const z = zlib.gzipSync(zlib.gzipSync(`auth=${a}`));
    return Buffer.concat([
      Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\ncontent-encoding: GZIP\r\nContent-Length: ${z.length}\r\n\r\n`),
      z,
    ]);
  },
  // Spellings that mix escaped and literal characters, and wrapped base64 (issue #10 item 5).
  spellings: (a) => {
    const v = a.replace(/^Bearer /, '');
    const body = spellingsOf(v).join('\n');
    return Buffer.from(
      `HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Quoted: ${pyQuote(v)}\r\nX-Entity: ${v.replace('/', '&#0047;')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  },
  // Mis-cased but single and decodable: decoded and scrubbed, the handle comes back.
  'ce-mixed-case': (a) => {
    const z = zlib.gzipSync(`auth=${a}`);
    return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: GZip\r\nTransfer-Encoding: Chunked\r\n\r\n`), chunk(z)]);
  },
};

/** Python's urllib.parse.quote(): `/` kept, `+` and everything else outside [A-Za-z0-9_.~-] escaped. */
const pyQuote = (v: string): string => v.replace(/[^A-Za-z0-9_.~/-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
const wrap76 = (t: string): string => (t.match(/.{1,76}/g) ?? []).join('\r\n');
function spellingsOf(v: string): string[] {
  return [
    `<p>quote: ${pyQuote(v)}</p>`,
    `only-slash: ${v.replace('/', '%2F')}`,
    `<p>entity: ${v.replace('/', '&#47;')}</p>`,
    `<p>padded: ${v.replace('/', '&#0047;').replace('+', '&#x002B;')}</p>`,
    `json: "${v.replace('/', '\\u002f')}"`,
    `mime:\r\n${wrap76(Buffer.from(`Content-Disposition: attachment; token=${v}; end`).toString('base64'))}`,
  ];
}

describe('hostile upstream codings', () => {
  let t: TurretProc;
  let up: RawUpstream;
  let token = '';
  const seen: string[] = [];

  before(async () => {
    up = await startRawUpstream((req, caseId) => {
      const f = ANSWERS[caseId ?? ''];
      return f ? f(header(req, 'authorization')[0] ?? '') : Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
    });
    t = await startTurret({ rules: { 'r.yaml': rules() }, env: { TEST_CODING_TOKEN: SECRET }, args: ['--admin', 'off'] });
    token = await agentToken(t, 'agent-a');
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    const all = [...seen, t.stdout(), t.stderr(), t.auditText()].join('\n');
    for (const f of FORMS) assert.ok(!all.includes(f), 'no output the agent or operator sees holds the secret');
  });

  const get = async (caseId: string, extra: string[] = []): Promise<CurlResult> => {
    const h = (await t.cli(['handle', 'issue', '--agent', 'agent-a', '--secret', 'api', '--ttl', '1h'])).stdout.trim();
    const r = await curl([
      '-x',
      `http://127.0.0.1:${t.port}`,
      '--proxy-user',
      `agent-a:${token}`,
      '--cacert',
      path.join(t.caDir, 'ca.crt'),
      '-H',
      `X-Case: ${caseId}`,
      '-H',
      `Authorization: Bearer ${h}`,
      ...extra,
      `https://echo.turret.test:${up.tlsPort}/${caseId}`,
    ]);
    seen.push(r.raw, r.stderr);
    // Whatever came back, decoded any way a client might: no form of the secret.
    const body = Buffer.from(r.body, 'latin1');
    for (const d of [zlib.gunzipSync, zlib.inflateSync]) {
      try {
        seen.push(d(body).toString('latin1'));
      } catch {
        /* not this coding */
      }
    }
    return r;
  };

  for (const caseId of ['te-gzip', 'te-gzip-chunked', 'te-two-lines', 'ce-zstd', 'ce-compress', 'ce-stack-lines']) {
    it(`${caseId}: 502 upstream_coding_unsupported, one record, the proxy keeps serving`, async () => {
      const r = await get(caseId);
      assert.equal(r.status, 502, r.raw);
      assert.equal(r.headers['x-turret-error'], 'upstream_coding_unsupported', r.raw);
      const conn = up.conns.find((c) => c.caseId === caseId);
      assert.match(header(conn?.request ?? { headers: [] }, 'authorization')[0] ?? '', new RegExp(`^Bearer ${SECRET.replace(/[+/]/g, '\\$&')}$`), 'the secret was injected');
      const rec = await waitForAudit(t, (x) => x.event === 'request' && x.path === `/${caseId}`);
      assert.equal(rec?.code, 'upstream_coding_unsupported');
      assert.equal(t.audit().filter((x) => x.path === `/${caseId}`).length, 1, 'exactly one record');
      const next = await get('plain');
      assert.equal(next.status, 200, next.raw);
    });
  }

  it('spellings mixing escaped and literal characters, and MIME-wrapped base64, never give the secret back', async () => {
    const r = await get('spellings');
    assert.equal(r.status, 200, r.raw);
    // Every spelling was found and replaced; decoding what arrived (one percent layer, HTML
    // references, JSON escapes, joined base64 lines) does not produce the secret either.
    const decoded = r.raw
      .replace(/%([0-9a-f]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)))
      .replace(/&#x([0-9a-f]+);?/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)))
      .replace(/&#([0-9]+);?/g, (_m, d: string) => String.fromCharCode(Number(d)))
      .replace(/\\u([0-9a-f]{4})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
    assert.ok(!decoded.includes(SECRET), 'no decoded spelling holds the secret');
    const b64 = r.raw.replace(/\r\n/g, '').match(/[A-Za-z0-9+/=]{16,}/g) ?? [];
    for (const run of b64) for (const k of [0, 1, 2, 3]) assert.ok(!Buffer.from(run.slice(k), 'base64').toString('latin1').includes(SECRET), 'no joined base64 run decodes to it');
    assert.ok((r.raw.match(/\[REDACTED:secret:api\]|trt_/g) ?? []).length >= 8, `every spelling replaced: ${r.raw}`);
    seen.push(decoded);
  });

  it('a single decodable coding in any letter case is decoded and scrubbed', async () => {
    const r = await get('ce-mixed-case', ['--compressed']);
    assert.equal(r.status, 200, r.raw);
    assert.equal(r.headers['content-encoding'], undefined, 'sent decoded');
    assert.match(r.body, /^auth=Bearer trt_/, 'the echoed secret became the handle');
  });

  it('asks upstream only for codings it can decode; a list left empty becomes identity', async () => {
    await get('plain', ['-H', 'Accept-Encoding: zstd, br;q=0.5, compress, *']);
    const a = up.conns.filter((c) => c.caseId === 'plain').at(-1);
    assert.deepEqual(header(a?.request ?? { headers: [] }, 'accept-encoding'), ['br;q=0.5']);
    await get('plain', ['-H', 'Accept-Encoding: zstd']);
    const b = up.conns.filter((c) => c.caseId === 'plain').at(-1);
    assert.deepEqual(header(b?.request ?? { headers: [] }, 'accept-encoding'), ['identity']);
  });
});
