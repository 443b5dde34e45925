/**
 * The client half of the upstream-exchange tests (test/integration/upstream-h1-*.test.ts): a real
 * turret whose one rule allows `up.turret.test` (any port, http and https, loopback) for agent-a,
 * and raw requests on the proxy port or inside an intercepted CONNECT tunnel that read everything
 * until the proxy closes, parsed with the strict parser of http-wire.ts. Records are found by the
 * request's unique path.
 */
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { agentToken, startTurret, waitForAudit, type TurretProc } from './turret.js';
import { LOOPBACK, type RuleFile } from './rules.js';
import { header, parseResponses, type ResponseStream, type WireMessage } from './http-wire.js';
import { caseOrEcho, upstreamSet, type H1Conn, type H1Script } from './h1-upstream.js';

export const HOST = 'up.turret.test';

export function h1Rules(o: { secret?: boolean } = {}): RuleFile {
  return {
    agents: ['agent-a'],
    ...(o.secret ? { secrets: [{ name: 'h1-token', from: { env: 'TEST_H1_TOKEN' }, hosts: [`${HOST}:*`] }] } : {}),
    rules: [{ name: 'up', methods: 'any', schemes: ['http', 'https'], hosts: [`${HOST}:*`], unsafe_addresses: LOOPBACK }],
    local: [HOST],
  };
}

export interface Exchanged {
  /** Every byte the client received until the proxy closed. */
  raw: Buffer;
  parsed: ResponseStream;
  /** The final (non-1xx) response, if one was complete. */
  final: WireMessage | undefined;
}

export interface Opened {
  /** Resolves once the client has received `text` (latin1); rejects when the connection closes first. */
  seen(text: string): Promise<void>;
  done: Promise<Exchanged>;
  socket: net.Socket;
}

export interface H1Proxy {
  t: TurretProc;
  auth: string;
  /** `METHOD http://up.turret.test:port/path` on a fresh proxy-port connection, read until close. */
  send(port: number, p: string, o?: { method?: string; headers?: string; body?: string | Buffer }): Promise<Exchanged>;
  /**
   * The same, returned at once: `seen(text)` resolves once the client has received `text` (the
   * event an upstream script waits for before it breaks the exchange), `done` with everything.
   */
  open(port: number, p: string, o?: { method?: string; headers?: string; body?: string | Buffer }): Opened;
  /** The same inside an intercepted CONNECT tunnel to a TLS upstream. */
  sendTls(port: number, p: string, o?: { method?: string; headers?: string; body?: string | Buffer }): Promise<Exchanged>;
  /** The one record of `p` once written; fails when there is none or more than one. */
  record(p: string): Promise<Record<string, unknown>>;
  /** Every request record of `p` now. */
  records(p: string): Array<Record<string, unknown>>;
  /**
   * The proxy still serves: GET `next` on `port` (an upstream that answers `own:<path>`) gets its
   * answer and its record, and `p` still has exactly one record (none came late).
   */
  servesNext(port: number, next: string, p: string): Promise<void>;
  /** A raw POST on the proxy port: the head (with `framing`, and Connection: close) now, the body written by the test. */
  post(port: number, p: string, framing: string): { s: net.Socket; all: Promise<Buffer> };
  stop(): Promise<void>;
}

/** Reads a socket until it closes (bounded); resolves with everything it received. */
export function readAll(s: net.Socket, maxMs = 20_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the proxy did not close in ${maxMs} ms; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 300))}`));
    }, maxMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

export function exchanged(raw: Buffer, method: string): Exchanged {
  const parsed = parseResponses(raw, { method, closed: true });
  return { raw, parsed, final: parsed.responses.find((m) => m.status >= 200) };
}

export async function startH1Proxy(o: { args?: string[]; env?: Record<string, string>; secret?: boolean } = {}): Promise<H1Proxy> {
  const t = await startTurret({ rules: { 'r.yaml': h1Rules({ secret: o.secret }) }, env: o.env, args: ['--admin', 'off', ...(o.args ?? [])] });
  const auth = `Basic ${Buffer.from(`agent-a:${await agentToken(t, 'agent-a')}`).toString('base64')}`;
  const ca = readFileSync(path.join(t.caDir, 'ca.crt'));
  const message = (target: string, port: number, method: string, headers: string, body: string | Buffer | undefined, proxyAuth: boolean): Buffer => {
    const len = body === undefined ? '' : `Content-Length: ${Buffer.byteLength(body)}\r\n`;
    const head = `${method} ${target} HTTP/1.1\r\nHost: ${HOST}:${port}\r\n${proxyAuth ? `Proxy-Authorization: ${auth}\r\n` : ''}${headers}${len}Connection: close\r\n\r\n`;
    return Buffer.concat([Buffer.from(head, 'latin1'), body === undefined ? Buffer.alloc(0) : Buffer.from(body)]);
  };
  const records = (p: string): Array<Record<string, unknown>> => t.audit().filter((r) => r.event === 'request' && r.path === p);
  const px: H1Proxy = {
    t,
    auth,
    async send(port, p, x = {}) {
      const method = x.method ?? 'GET';
      const s = net.connect(t.port, '127.0.0.1');
      const all = readAll(s);
      s.write(message(`http://${HOST}:${port}${p}`, port, method, x.headers ?? '', x.body, true));
      return exchanged(await all, method);
    },
    open(port, p, x = {}) {
      const method = x.method ?? 'GET';
      const s = net.connect(t.port, '127.0.0.1');
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString('latin1')));
      const done = readAll(s).then((raw) => exchanged(raw, method));
      s.write(message(`http://${HOST}:${port}${p}`, port, method, x.headers ?? '', x.body, true));
      const seen = (text: string): Promise<void> =>
        new Promise((resolve, reject) => {
          const check = (): void => {
            if (got.includes(text)) {
              s.off('data', check).off('close', check);
              resolve();
            } else if (s.destroyed) reject(new Error(`the client connection closed before ${JSON.stringify(text)} arrived: ${JSON.stringify(got.slice(0, 300))}`));
          };
          s.on('data', check).on('close', check);
          check();
        });
      return { seen, done, socket: s };
    },
    async sendTls(port, p, x = {}) {
      const method = x.method ?? 'GET';
      const raw = net.connect(t.port, '127.0.0.1');
      raw.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
      let got = '';
      const onData = (c: Buffer): void => {
        got += c.toString('latin1');
      };
      raw.on('data', onData);
      raw.write(`CONNECT ${HOST}:${port} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
      await new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (!got.includes('\r\n\r\n')) return;
          raw.off('data', check).off('close', fail);
          resolve();
        };
        const fail = (): void => reject(new Error(`CONNECT closed: ${got}`));
        raw.on('data', check).once('close', fail);
      });
      raw.off('data', onData);
      assert.match(got, /^HTTP\/1\.1 200 /, 'CONNECT answered 200');
      const s = tls.connect({ socket: raw, servername: HOST, ca });
      s.on('error', () => undefined);
      const all = readAll(s);
      await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('close', () => reject(new Error('tunnel TLS failed'))));
      s.write(message(p, port, method, x.headers ?? '', x.body, false));
      return exchanged(await all, method);
    },
    async record(p) {
      const rec = await waitForAudit(t, (r) => r.event === 'request' && r.path === p, 10_000);
      assert.ok(rec, `no audit record for ${p}:\n${t.auditText().slice(-1500)}`);
      return rec;
    },
    records,
    async servesNext(port, next, p) {
      const n = await px.send(port, next);
      assert.equal(bodyOf(n), `own:${next}`, n.raw.toString('latin1'));
      await px.record(next);
      assert.equal(records(p).length, 1, `exactly one record for ${p}`);
    },
    post(port, p, framing) {
      const s = net.connect(t.port, '127.0.0.1');
      s.on('error', () => undefined);
      const all = readAll(s, 30_000);
      s.write(
        `POST http://${HOST}:${port}${p} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nProxy-Authorization: ${auth}\r\nContent-Type: application/octet-stream\r\n${framing}Connection: close\r\n\r\n`,
      );
      return { s, all };
    },
    stop: () => t.stop(),
  };
  return px;
}

/** The body of a final response as text (latin1). */
export function bodyOf(x: Exchanged): string {
  return x.final?.body.toString('latin1') ?? '';
}

/** Writes `total` bytes of `chunk` into `s` with its backpressure, until done or the socket is gone; the bytes handed over. */
export function upload(s: net.Socket, total: number, chunk: Buffer): { written: () => number } {
  let written = 0;
  const pump = (): void => {
    while (written < total && !s.destroyed) {
      written += chunk.length;
      if (!s.write(chunk)) return void s.once('drain', pump);
    }
  };
  pump();
  return { written: () => written };
}

/**
 * A describe block's turret and upstreams: started in before(), stopped in after(). `px` is
 * the proxy once before() has run.
 */
export function useH1(o: Parameters<typeof startH1Proxy>[0] = {}): { readonly px: H1Proxy; ups: ReturnType<typeof upstreamSet> } {
  const ups = upstreamSet();
  let px: H1Proxy | undefined;
  before(async () => {
    px = await startH1Proxy(o);
  });
  after(async () => {
    await px?.stop();
    await ups.close();
  });
  return {
    get px(): H1Proxy {
      assert.ok(px, 'the proxy has started');
      return px;
    },
    ups,
  };
}

/**
 * An upstream script for a case that must see the client's progress (`client.seen`): requests
 * ending in `/case` run `run` once the client is attached, others are answered `own:<path>`.
 */
export function withClient(run: (c: H1Conn, client: Opened) => Promise<void>): { script: H1Script; attach(client: Opened): Opened } {
  let attach: (o: Opened) => void = () => {};
  const client = new Promise<Opened>((r) => (attach = r));
  return {
    script: caseOrEcho(async (c) => run(c, await client)),
    attach: (o) => {
      attach(o);
      return o;
    },
  };
}

/** The client got a 502 (or `status`) with `code`, and `p` has its one failed record with that code; returns it. */
export async function expectRefused(px: H1Proxy, r: Exchanged, p: string, code: string, status = 502): Promise<Record<string, unknown>> {
  const text = r.raw.toString('latin1');
  assert.equal(r.parsed.problem, null, text);
  assert.equal(r.final?.status, status, text.slice(0, 400));
  assert.equal(header(r.final!, 'x-turret-error')[0], code, text.slice(0, 400));
  assert.equal(r.parsed.rest.length, 0, 'nothing after the refusal');
  const rec = await px.record(p);
  assert.equal(rec.code, code, JSON.stringify(rec));
  assert.equal(rec.outcome, 'failed', JSON.stringify(rec));
  assert.equal(rec.status, status);
  return rec;
}

/** The head (200) and `seen` went out, then the response was cut: the client can tell it never ended. */
export function expectCut(r: Exchanged, seen: string): void {
  const text = r.raw.toString('latin1');
  assert.match(text, /^HTTP\/1\.1 200 /);
  assert.ok(text.includes(seen), text.slice(0, 300));
  assert.equal(r.final, undefined, `the client must not see a complete response: ${text.slice(0, 300)}`);
}
