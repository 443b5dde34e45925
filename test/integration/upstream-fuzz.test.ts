/**
 * Response-framing fuzz (issue #10): a real raw upstream answers a few hundred requests with
 * seeded random combinations of status, 1xx interims, Content-Length, Transfer-Encoding,
 * Content-Encoding, corrupt/truncated bodies, trailers, and FIN or RST at any byte
 * (test/helpers/response-fuzz.ts). After each one:
 *
 * - the client got either a canonical response or an aborted one, never a coded or unscannable
 *   body, and no byte it received (head, body, trailers; decoded if it looks compressed) holds
 *   the secret raw, in base64 or percent-encoded;
 * - the proxy answers the next request (on another upstream) with 200;
 * - exactly one audit record exists for the case's unique path.
 *
 * The seed is printed; `TURRET_FUZZ_SEED=<n>` replays a run, `TURRET_FUZZ_CASES=<n>` sizes it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { agentToken, startTurret, type TurretProc } from '../helpers/turret.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';
import { startRawUpstream, type RawUpstream } from '../helpers/raw-upstream.js';
import { fuzzCase, type FuzzCase } from '../helpers/response-fuzz.js';
import { header, parseResponses } from '../helpers/http-wire.js';

// `/` and `+` make the percent form differ from the raw one.
const SECRET = `fake_fuzz/${randomBytes(12).toString('hex')}+${randomBytes(6).toString('hex')}`;
const SEED = Number(process.env.TURRET_FUZZ_SEED ?? randomInt(2 ** 31));
const CASES = Math.min(2000, Number(process.env.TURRET_FUZZ_CASES ?? 300));
const FORMS = [SECRET, Buffer.from(SECRET).toString('base64'), Buffer.from(SECRET).toString('base64url'), encodeURIComponent(SECRET), encodeURIComponent(SECRET).toLowerCase()];

function rules(): RuleFile {
  return {
    agents: ['agent-a'],
    secrets: [{ name: 'fuzz-token', from: { env: 'TEST_FUZZ_TOKEN' }, hosts: ['fuzz.turret.test:*'] }],
    rules: [{ name: 'fuzz', methods: ['read'], hosts: ['fuzz.turret.test:*', 'probe.turret.test:*'], unsafe_addresses: LOOPBACK }],
    local: ['fuzz.turret.test', 'probe.turret.test'],
    testCa: false,
  };
}

/** Everything the client received, up to the proxy's close (bounded). */
function rawRequest(port: number, text: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('the proxy did not finish the response in 20 s'));
    }, 20_000);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** The texts a client could make of bytes: as sent, and decoded by any coding that accepts them. */
function readings(b: Buffer): string[] {
  const out = [b.toString('latin1')];
  for (const d of [zlib.gunzipSync, zlib.inflateSync, zlib.inflateRawSync, zlib.brotliDecompressSync]) {
    for (let at = 0; at < Math.min(b.length, 4096); at++) {
      // A compressed stream may start anywhere in a body that also holds a head or chunk lines.
      if (d === zlib.gunzipSync && !(b[at] === 0x1f && b[at + 1] === 0x8b)) continue;
      if (d !== zlib.gunzipSync && at > 0) break;
      try {
        out.push(d(b.subarray(at), { finishFlush: zlib.constants.Z_SYNC_FLUSH } as never).toString('latin1'));
      } catch {
        /* not this coding */
      }
    }
  }
  return out;
}

/** The body bytes of an aborted chunked response, as far as they got (lenient: the end is missing). */
function dechunkPartial(raw: Buffer): Buffer {
  const at = raw.indexOf('\r\n\r\n');
  if (at < 0 || !/\r\ntransfer-encoding: *chunked/i.test(raw.subarray(0, at).toString('latin1'))) return at < 0 ? Buffer.alloc(0) : raw.subarray(at + 4);
  const out: Buffer[] = [];
  for (let i = at + 4; i < raw.length;) {
    const nl = raw.indexOf('\r\n', i);
    if (nl < 0) break;
    const n = parseInt(raw.subarray(i, nl).toString('latin1'), 16);
    if (!(n > 0)) break;
    out.push(raw.subarray(nl + 2, nl + 2 + n));
    i = nl + 2 + n + 2;
  }
  return Buffer.concat(out);
}

describe(`response-framing fuzz (seed ${SEED}, ${CASES} cases)`, () => {
  let t: TurretProc;
  let up: RawUpstream;
  let probe: http.Server;
  let probePort = 0;
  let auth = '';
  const cases = new Map<string, FuzzCase>();

  before(async () => {
    console.log(`# fuzz seed: ${SEED} (replay: TURRET_FUZZ_SEED=${SEED})`);
    up = await startRawUpstream((_req, caseId) => {
      const c = cases.get(caseId ?? '');
      return c ? c.answer : Buffer.from('HTTP/1.1 500 Unknown case\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    probe = http.createServer((_req, res) => res.end('probe-ok'));
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    probePort = (probe.address() as AddressInfo).port;
    t = await startTurret({ rules: { 'r.yaml': rules() }, env: { TEST_FUZZ_TOKEN: SECRET }, args: ['--admin', 'off'] });
    auth = `Basic ${Buffer.from(`agent-a:${await agentToken(t, 'agent-a')}`).toString('base64')}`;
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    probe?.closeAllConnections();
    await new Promise((r) => probe?.close(r));
  });

  const request = (host: string, port: number, path: string, method: string, caseId: string): Promise<Buffer> =>
    rawRequest(
      t.port,
      `${method} http://${host}:${port}${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nProxy-Authorization: ${auth}\r\nX-Case: ${caseId}\r\nConnection: close\r\n\r\n`,
    );

  /** Records for a path, once at least one is there (the writer appends asynchronously). */
  const recordsFor = async (path: string): Promise<Array<Record<string, unknown>>> => {
    for (let i = 0; i < 400; i++) {
      const recs = t.audit().filter((r) => r.event === 'request' && r.path === path);
      if (recs.length > 0) return recs;
      await new Promise((r) => setTimeout(r, 25));
    }
    return [];
  };

  it('every hostile response ends in one record, no secret, and a proxy that still serves', async () => {
    const outcomes = new Map<string, number>();
    for (let i = 0; i < CASES; i++) {
      const c = fuzzCase(SEED, i, SECRET);
      cases.set(c.id, c);
      const where = `case ${c.id} (${c.describe}); replay with TURRET_FUZZ_SEED=${SEED}`;
      const got = await request('fuzz.turret.test', up.port, `/fuzz/${c.id}`, c.method, c.id);

      // What the client received: responses in canonical form, then possibly an aborted rest.
      const parsed = parseResponses(got, { method: c.method, closed: true });
      assert.equal(parsed.problem, null, `${where}: the proxy wrote a malformed response: ${parsed.problem}\n${got.toString('latin1').slice(0, 400)}`);
      const final = parsed.responses.find((m) => m.status >= 200);
      for (const text of readings(got).concat(readings(final ? final.body : dechunkPartial(parsed.rest)))) {
        for (const f of FORMS) assert.ok(!text.includes(f), `${where}: the client received the secret (${f === SECRET ? 'raw' : 'encoded'})`);
      }
      const code = final ? (header(final, 'x-turret-error')[0] ?? '') : '';
      if (final && c.bodyExpected && final.status < 300 && !code) {
        // A body that was relayed was scanned: never with a coding the client would still undo.
        const ce = header(final, 'content-encoding').map((v) => v.trim().toLowerCase());
        assert.ok(
          ce.every((v) => v === '' || v === 'identity'),
          `${where}: a coded body was relayed: ${ce.join(',')}`,
        );
      }
      // An unscannable coding or a transfer coding other than chunked never ends in a relayed body.
      const teBad = c.transferEncoding.some((x) => x !== 'chunked');
      const ceBad = c.contentEncoding.length > 1 || c.contentEncoding.some((x) => !['gzip', 'x-gzip', 'deflate', 'br', 'identity'].includes(x));
      if (final && c.bodyExpected && (teBad || ceBad) && final.status === c.status && final.status !== 502) {
        assert.fail(`${where}: relayed as ${final.status} although its coding cannot be scanned`);
      }
      const key = final
        ? `${final.status}${code ? ` ${code}` : ''}${parsed.rest.length > 0 || (final === undefined && got.length > 0) ? ' aborted' : ''}`
        : got.length === 0
          ? 'closed'
          : 'aborted';
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

      // The proxy still serves, and the case has its one record.
      const next = await request('probe.turret.test', probePort, `/probe/${c.id}`, 'GET', `probe-${c.id}`);
      const probed = parseResponses(next, { method: 'GET', closed: true }).responses[0];
      assert.ok(
        probed?.status === 200 && probed.body.toString() === 'probe-ok',
        `${where}: the proxy answers the next request: ${next.toString('latin1').slice(0, 300)}\n${t.stderr().slice(-2000)}`,
      );
      const recs = await recordsFor(`/fuzz/${c.id}`);
      assert.equal(recs.length, 1, `${where}: exactly one audit record (${recs.length})`);
      if (process.env.TURRET_FUZZ_TRACE) console.log(`# ${c.id} [${c.describe}] -> ${key} (${String(recs[0]?.reason)})`);
      if (final?.status === 502 && code) assert.equal(recs[0]?.code, code, `${where}: the record carries the code the client saw`);
    }
    // No case got a second record later (an exchange that finished twice).
    const all = t.audit().filter((r) => r.event === 'request' && String(r.path).startsWith('/fuzz/'));
    assert.equal(all.length, CASES, 'one record per case, no more');
    assert.equal(t.proc.exitCode, null, 'turret is still running');
    assert.doesNotMatch(t.stderr(), /uncaught|unhandled/i);
    for (const f of FORMS) assert.ok(!t.auditText().includes(f) && !t.stderr().includes(f) && !t.stdout().includes(f), 'no secret in the audit log or logs');
    console.log(
      `# fuzz outcomes: ${[...outcomes]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k}: ${n}`)
        .join('; ')}`,
    );
  });
});
