/**
 * The client half of the upstream-exchange tests (test/integration/upstream-h1-*.test.ts): a real
 * turret whose one rule allows `up.turret.test` (any port, http and https, loopback) for agent-a,
 * and raw requests on the proxy port or inside an intercepted CONNECT tunnel that read everything
 * until the proxy closes, parsed with the strict parser of http-wire.ts. Records are found by the
 * request's unique path.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { agentToken, startTurret, waitForAudit, type TurretProc } from './turret.js';
import { LOOPBACK, type RuleFile } from './rules.js';
import { parseResponses, type ResponseStream, type WireMessage } from './http-wire.js';

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
    stop: () => t.stop(),
  };
  return px;
}

/** The body of a final response as text (latin1). */
export function bodyOf(x: Exchanged): string {
  return x.final?.body.toString('latin1') ?? '';
}
