/**
 * Shared by the pipeline-sync tests: one turret with handles for a plain API secret, an
 * on_misuse: revoke secret and an AWS credential, an upstream that echoes (and verifies SigV4 with
 * the real key under /sig), intercepted tunnels spoken to with raw pipelined HTTP/1.1.
 */
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { basicAuth, rawConnect } from './raw-proxy.js';
import { parseResponses, type WireMessage } from './http-wire.js';
import { agentToken, assertNoSecrets, startTurret, turretOutputs, type TurretProc } from './turret.js';
import { echo, startUpstream, type Upstream } from './upstream.js';
import { verifySigV4, type Verdict } from './sigv4.js';
import { LOOPBACK, type RuleFile } from './rules.js';

export const API = `fake_api_${randomBytes(18).toString('hex')}`;
export const BURN = `fake_burn_${randomBytes(18).toString('hex')}`;
export const AWS_ID = `AKIAFAKE${randomBytes(6).toString('hex').toUpperCase()}`;
export const AWS_KEY = `fake/aws+${randomBytes(18).toString('base64')}`;
export const ENV = { T_API: API, T_BURN: BURN, T_AWS_ID: AWS_ID, T_AWS_KEY: AWS_KEY, TURRET_ADMIN: 'off' };

export const rules = (denyGone: boolean): RuleFile => ({
  agents: ['a'],
  secrets: [
    { name: 'api', from: { env: 'T_API' }, hosts: ['echo.turret.test:*'] },
    { name: 'burn', from: { env: 'T_BURN' }, hosts: ['echo.turret.test:*'], on_misuse: 'revoke' },
    { name: 'aws', from: { env: 'T_AWS_KEY' }, hosts: ['echo.turret.test:*'], aws: { access_key_id: { env: 'T_AWS_ID' } } },
  ],
  rules: [
    {
      name: 'all',
      methods: ['read', 'write'],
      hosts: ['echo.turret.test:*', 'other.turret.test:*', '127.0.0.1:*'],
      paths: denyGone ? ['/keep/**'] : ['/hold', '/hold-*', '/burn*', '/pipe*', '/reload*', '/keep/**', '/host*', '/loc*', '/loc1/**', '/sig*', '/abort*', '/gz*'],
      unsafe_addresses: LOOPBACK,
    },
    { name: 'ro', methods: ['read'], hosts: ['ro.turret.test:*'], unsafe_addresses: LOOPBACK },
    { name: 'limited', methods: ['read'], hosts: ['limited.turret.test:*'], unsafe_addresses: LOOPBACK, rate_limit: { requests: 1, per: '1h' } },
  ],
  local: ['echo.turret.test', 'other.turret.test', 'limited.turret.test', 'ro.turret.test'],
});

/** An intercepted tunnel to `host`: the TLS socket a client would speak HTTP/1.1 over. */
export async function tunnel(t: TurretProc, auth: string, host: string, port: number): Promise<tls.TLSSocket> {
  const { res, socket } = await rawConnect(t.port, `${host}:${port}`, auth);
  assert.equal(res.status, 200, JSON.stringify(res));
  const ca = readFileSync(path.join(t.caDir, 'ca.crt'));
  return new Promise((resolve, reject) => {
    const s = tls.connect({ socket, servername: host, ca }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Write `text` at once, then read until `n` complete responses arrived (or the socket closed). */
export function exchange(s: tls.TLSSocket, text: string | Buffer, n: number): Promise<{ responses: WireMessage[]; raw: string }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const finish = (closed: boolean): void => {
      const r = parseResponses(buf, { closed });
      if (r.problem) return done(new Error(`bad responses: ${r.problem}`));
      if (r.responses.length >= n) return done(null, r.responses);
      if (closed) done(new Error(`connection closed after ${r.responses.length} of ${n} responses: ${buf.toString('latin1').slice(0, 400)}`));
    };
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      finish(false);
    };
    const onClose = (): void => finish(true);
    const done = (e: Error | null, responses?: WireMessage[]): void => {
      s.off('data', onData).off('close', onClose).off('error', onClose);
      if (e) reject(e);
      else resolve({ responses: responses ?? [], raw: buf.toString('latin1') });
    };
    s.on('data', onData).on('close', onClose).on('error', onClose);
    s.write(text);
  });
}

export const status = (m: WireMessage | undefined): number => m?.status ?? 0;
export const errorCode = (m: WireMessage | undefined): string => m?.headers.find(([k]) => k.toLowerCase() === 'x-turret-error')?.[1] ?? '';

export interface SyncTurret {
  t: TurretProc;
  up: Upstream;
  auth: string;
  seen: string[];
  verdicts: Map<string, Verdict>;
  issue: (secret: string) => Promise<string>;
  get: (host: string, p: string, extra?: string) => string;
  /** The audit records of the request paths starting with `mark`. */
  records: (mark: string) => Array<Record<string, unknown>>;
}

/** Starts the turret and upstream before the tests of the calling file, stops them after. */
export function syncTurret(): SyncTurret {
  const c = { seen: [] as string[], verdicts: new Map<string, Verdict>() } as SyncTurret;
  c.issue = async (secret) => {
    const r = await c.t.cli(['handle', 'issue', '--agent', 'a', '--secret', secret, '--ttl', '1h']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  c.get = (host, p, extra = '') => `GET ${p} HTTP/1.1\r\nHost: ${host}:${c.up.port}\r\n${extra}\r\n`;
  c.records = (mark) => c.t.audit().filter((r) => r.event === 'request' && String(r.path ?? '').startsWith(mark));
  before(async () => {
    // Requests under /sig are checked against the REAL AWS key, independently of Turret's signing.
    c.up = await startUpstream({
      handler: (req, res, body) => {
        if (!req.url?.startsWith('/sig')) return echo(req, res, body);
        void verifySigV4(AWS_ID, AWS_KEY, req, body).then((v) => {
          c.verdicts.set(new URL(req.url ?? '/', 'https://x').pathname, v);
          echo(req, res, body);
        });
      },
    });
    c.t = await startTurret({ rules: { 'r.yaml': rules(false) }, env: ENV });
    c.auth = basicAuth('a', await agentToken(c.t, 'a'));
  });
  after(async () => {
    await c.t?.stop();
    await c.up?.close();
    assertNoSecrets([...turretOutputs(c.t), ['client responses', c.seen.join('\n')]], { API, BURN, AWS_KEY });
  });
  return c;
}

/** The hash @smithy/signature-v4 wants, from node:crypto. */
export class Sha256 {
  private h;
  constructor(k?: Uint8Array | string) {
    this.h = k === undefined ? createHash('sha256') : createHmac('sha256', k);
  }
  update(d: Uint8Array | string): void {
    this.h.update(d);
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
  reset(): void {}
}
