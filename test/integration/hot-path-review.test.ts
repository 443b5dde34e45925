/**
 * Attack review of the seventh pass's hot-path changes (issue #15: one 'close' listener per request
 * and per response, undici's request() in its callback form, response headers filtered in place,
 * the request's Connection tokens read from the raw list), through the real proxy with raw
 * sockets on both sides:
 *
 * - one keep-alive client connection carries 240 requests of every kind (GET and POST, the
 *   small-body and the streamed path, an upstream reset before its head, hostile headers): each
 *   is answered in order and leaves exactly one record with its cause, and the connection's
 *   socket keeps the same number of listeners from its second request to its last (a preload in
 *   the turret process reports them), with no MaxListenersExceededWarning;
 * - response headers: fields the Connection header names (split over several lines, odd case,
 *   empty tokens, `close, x-secret`) and hop-by-hop fields never reach the client, a field whose
 *   name holds a secret is dropped, values and each Set-Cookie item are scrubbed, on the
 *   small-body and the streamed path; the request's Connection tokens (several lines, empty ones,
 *   tabs, one naming Authorization) drop those fields toward the upstream; no output of any party
 *   holds a generated fake secret.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTurret, agentToken, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { basic } from '../helpers/ops.js';
import { LOOPBACK } from '../helpers/rules.js';
import { header, parseResponses } from '../helpers/http-wire.js';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const alnum = (n: number): string => [...randomBytes(n)].map((b) => ALNUM[b % ALNUM.length]).join('');
/** A GitHub token's shape (a built-in pattern) and a configured secret's value, both generated. */
const PAT = `ghp_${alnum(36)}`;
const SECRET = `wr-${alnum(28)}`;

const HOSTILE =
  'Connection: close, x-secret\r\nConnection:   X-Foo  ,  ,x-BAR ,\r\nCONNECTION: X-Dup\r\n' +
  'x-secret: hidden1\r\nX-Foo: hidden2\r\nx-bar: hidden3\r\nx-dup: hidden4\r\nX-DUP: hidden5\r\n' +
  'Keep-Alive: timeout=5\r\nProxy-Connection: x\r\nUpgrade: h2c\r\nTE: trailers\r\n' +
  `Set-Cookie: a=${PAT}; Path=/\r\nSet-Cookie: b=2\r\nSet-Cookie: c=${SECRET}\r\n` +
  `X-${PAT}: v\r\nX-Val: Bearer ${PAT}\r\nX-S: ${SECRET}\r\nX-Keep: yes\r\n`;

/** The upstream's answer by the first path segment; every answer keeps the connection (unless it resets). */
function answer(s: net.Socket, kind: string): void {
  if (kind === 'rst') return void s.resetAndDestroy();
  if (kind === 'stream') return void s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab\n\r\n3\r\ncd\n\r\n0\r\n\r\n');
  if (kind === 'hdrs') return void s.write(`HTTP/1.1 200 OK\r\n${HOSTILE}Content-Length: 3\r\n\r\nok\n`);
  if (kind === 'hdrstream') return void s.write(`HTTP/1.1 200 OK\r\n${HOSTILE}Transfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n`);
  s.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n');
}

/** Reports, at each response's close, the request's ordinal on its socket and the socket's listener total. */
const PRELOAD = `import http from 'node:http';
const emit = http.Server.prototype.emit;
const n = new WeakMap();
const total = (e) => e.eventNames().reduce((sum, k) => sum + e.listenerCount(k), 0);
http.Server.prototype.emit = function (ev, ...a) {
  if (ev === 'request') {
    const [req, res] = a;
    const s = req.socket;
    const i = (n.get(s) ?? 0) + 1;
    n.set(s, i);
    res.once('close', () => process.stderr.write('LISTENERS ' + s.remotePort + ' ' + i + ' ' + total(s) + '\\n'));
  }
  return emit.call(this, ev, ...a);
};
`;

describe('hot path under attack: listeners, causes and header hygiene over one keep-alive connection', () => {
  let t: TurretProc;
  let up: net.Server;
  let upPort = 0;
  let auth = '';
  const upstreamHeads: string[] = [];
  const clientBytes: Buffer[] = [];

  before(async () => {
    up = net.createServer((s) => {
      let buf = Buffer.alloc(0);
      s.on('error', () => undefined);
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('latin1');
          const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
          if (buf.length < end + 4 + length) return;
          buf = buf.subarray(end + 4 + length);
          upstreamHeads.push(head);
          answer(s, (head.split(' ')[1] ?? '/').split('/')[1] ?? '');
        }
      });
    });
    await new Promise<void>((resolve) => up.listen(0, '127.0.0.1', resolve));
    upPort = (up.address() as net.AddressInfo).port;
    const dir = mkdtempSync(path.join(tmpdir(), 'turret-hotpath-'));
    const preload = path.join(dir, 'listeners.mjs');
    writeFileSync(preload, PRELOAD);
    t = await startTurret({
      rules: {
        'r.yaml': {
          agents: ['agent-a'],
          secrets: [{ name: 'wr-token', from: { env: 'WR_TOKEN' }, hosts: ['up.turret.test:*'] }],
          rules: [{ name: 'up', methods: ['read', 'POST'], schemes: ['http'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
          local: ['up.turret.test'],
        },
      },
      env: { WR_TOKEN: SECRET, NODE_OPTIONS: `--import=${preload}` },
    });
    auth = basic('agent-a', await agentToken(t, 'agent-a'));
  });
  after(async () => {
    await t?.stop();
    await new Promise<void>((resolve) => (up ? up.close(() => resolve()) : resolve()));
  });

  const request = (p: string, o: { method?: string; body?: string; extra?: string } = {}): string => {
    const method = o.method ?? 'GET';
    const body = o.body ?? '';
    const length = method === 'POST' ? `Content-Length: ${body.length}\r\n` : '';
    return `${method} http://up.turret.test:${upPort}${p} HTTP/1.1\r\nHost: up.turret.test:${upPort}\r\nProxy-Authorization: ${auth}\r\n${o.extra ?? ''}${length}\r\n${body}`;
  };

  /** A raw client connection and everything it received; `until` resolves once `ok` holds (checked on each read and at close). */
  const client = async (): Promise<{ s: net.Socket; got: () => Buffer; until: (ok: (b: Buffer) => boolean, what: string) => Promise<void> }> => {
    const s = net.connect(t.port, '127.0.0.1');
    let got = Buffer.alloc(0);
    const waiters = new Set<() => void>();
    s.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      for (const w of [...waiters]) w();
    });
    s.on('close', () => {
      clientBytes.push(got);
      for (const w of [...waiters]) w();
    });
    s.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    const until = (ok: (b: Buffer) => boolean, what: string): Promise<void> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (ok(got)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          } else if (s.destroyed) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`connection closed before ${what}: ${got.toString('latin1').slice(-500)}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${what} within 10 s: ${got.toString('latin1').slice(-500)}`));
        }, 10_000);
        waiters.add(check);
        check();
      });
    return { s, got: () => got, until };
  };
  const answered = (b: Buffer): number => parseResponses(b, { closed: false }).responses.filter((r) => r.status >= 200).length;
  const records = (p: string): Array<Record<string, unknown>> => t.audit().filter((r) => r.event === 'request' && r.path === p);

  it('240 requests of every kind on one keep-alive connection: each answered and recorded once with its cause, listener count flat', async () => {
    const kinds = ['ok', 'post', 'stream', 'rst', 'hdrs', 'hdrstream'];
    const N = 240;
    const c = await client();
    const port = c.s.localPort;
    const paths: string[] = [];
    for (let i = 0; i < N; i++) {
      const kind = kinds[i % kinds.length] as string;
      const p = `/${kind === 'post' ? 'ok' : kind}/ka-${i}`;
      paths.push(p);
      c.s.write(kind === 'post' ? request(p, { method: 'POST', body: `hello ${i}` }) : request(p));
      await c.until((b) => answered(b) > i, `answer ${i}`);
    }
    const parsed = parseResponses(c.got(), { closed: false });
    assert.equal(parsed.problem, null);
    assert.equal(parsed.rest.length, 0);
    assert.deepEqual(
      parsed.responses.map((r) => r.status),
      paths.map((p) => (p.startsWith('/rst/') ? 502 : 200)),
    );
    c.s.destroy();
    await waitRecords(t, paths);
    for (const p of paths) {
      const r = records(p);
      assert.equal(r.length, 1, `${p}: ${JSON.stringify(r)}`);
      assert.equal(r[0]?.code, p.startsWith('/rst/') ? 'upstream_closed' : undefined, `${p}: ${JSON.stringify(r[0])}`);
    }
    const counts = await listenerCounts(t, port, N);
    assert.equal(counts.length, N, 'the preload saw every response close');
    const fromSecond = new Set(counts.filter(([i]) => i >= 2).map(([, n]) => n));
    assert.equal(fromSecond.size, 1, `listeners on the connection's socket per request: ${JSON.stringify(counts.slice(0, 12))} … ${JSON.stringify(counts.slice(-6))}`);
    assert.doesNotMatch(t.stderr(), /MaxListenersExceeded|Warning:/);
  });

  it('response headers: Connection-named and hop-by-hop fields removed, a secret-named field dropped, values and Set-Cookie items scrubbed', async () => {
    const c = await client();
    c.s.write(request('/hdrs/h-small') + request('/hdrstream/h-stream'));
    await c.until((b) => answered(b) === 2, 'both answers');
    const [small, streamed] = parseResponses(c.got(), { closed: false }).responses;
    for (const r of [small, streamed]) {
      assert.ok(r);
      assert.equal(r.status, 200);
      const names = r.headers.map(([k]) => k.toLowerCase());
      for (const gone of ['x-secret', 'x-foo', 'x-bar', 'x-dup', 'proxy-connection', 'upgrade', 'te'])
        assert.ok(!names.includes(gone), `${gone} reached the client: ${names.join(',')}`);
      assert.deepEqual(header(r, 'keep-alive'), ['timeout=30'], "only Node's own Keep-Alive");
      assert.deepEqual(header(r, 'connection'), ['keep-alive'], "only Node's own Connection");
      assert.ok(!names.some((k) => k.includes(PAT.toLowerCase())), 'the field named by a secret is dropped');
      assert.deepEqual(header(r, 'x-keep'), ['yes']);
      assert.deepEqual(header(r, 'set-cookie'), ['a=[REDACTED:github-pat]; Path=/', 'b=2', 'c=[REDACTED:secret:wr-token]']);
      assert.deepEqual(header(r, 'x-val'), ['Bearer [REDACTED:github-pat]']);
      assert.deepEqual(header(r, 'x-s'), ['[REDACTED:secret:wr-token]']);
      assert.equal(r.body.toString(), 'ok\n');
    }
    c.s.destroy();
    await waitRecords(t, ['/hdrs/h-small', '/hdrstream/h-stream']);
    for (const p of ['/hdrs/h-small', '/hdrstream/h-stream']) assert.ok(Number(records(p)[0]?.redactions) >= 5, JSON.stringify(records(p)));
  });

  it("the request's Connection tokens (several lines, empty ones, tabs, odd case, one naming Authorization) drop those fields toward the upstream", async () => {
    const c = await client();
    const extra =
      'Connection: X-A, , x-b  ,authorization\r\nconnection:\tX-C\t,Proxy-Authorization\r\nCONNECTION: ,\r\n' +
      `X-A: 1\r\nx-B: 2\r\nx-c: 3\r\nAuthorization: Bearer not-a-secret\r\nX-D: keep\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n`;
    c.s.write(request('/ok/req-tokens', { extra }));
    await c.until((b) => answered(b) === 1, 'the answer');
    c.s.destroy();
    const head = upstreamHeads.find((h) => h.includes(' /ok/req-tokens ')) ?? '';
    const fields = head.split('\r\n').slice(1);
    assert.deepEqual(
      fields.map((l) => l.toLowerCase()),
      [`host: up.turret.test:${upPort}`, 'connection: keep-alive', 'x-d: keep'],
    );
  });

  it('no output of any party holds the generated secrets', async () => {
    await t.stop();
    const outputs = [t.auditText(), t.stderr(), t.stdout(), ...clientBytes.map((b) => b.toString('latin1'))].join('\n');
    for (const s of [PAT, SECRET]) assert.ok(!outputs.includes(s));
  });
});

/** The preload's [ordinal, listener total] for each of `n` responses on the client port `port`, once all are reported. */
async function listenerCounts(t: TurretProc, port: number | undefined, n: number): Promise<Array<readonly [number, number]>> {
  const read = (): Array<readonly [number, number]> =>
    t
      .stderr()
      .split('\n')
      .map((l) => /^LISTENERS (\d+) (\d+) (\d+)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null && Number(m[1]) === port)
      .map((m) => [Number(m[2]), Number(m[3])] as const);
  if (read().length < n) {
    // Each line arrives on turret's stderr: wait for them there (bounded).
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (read().length < n) return;
        t.proc.stderr?.off('data', check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        t.proc.stderr?.off('data', check);
        resolve();
      }, 10_000);
      t.proc.stderr?.on('data', check);
    });
  }
  return read();
}

/** Waits until every path has a record (the writer thread appends them asynchronously). */
async function waitRecords(t: TurretProc, paths: string[]): Promise<void> {
  const has = (): string[] => {
    const seen = new Set(t.audit().map((r) => String(r.path)));
    return paths.filter((p) => !seen.has(p));
  };
  await waitForAudit(t, () => has().length === 0, 15_000);
  assert.deepEqual(has().slice(0, 5), [], 'every request has a record');
}
