/**
 * The pieces of `turret run`'s sandbox that are pure: the stub resolver's answers (hostile
 * packets included), the environment allow-list, what the CA variables may make visible, and the
 * order of bwrap's mounts. The real sandbox is tested in test/integration/run-sandbox.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Policy } from '../../src/policy/types.js';
import { innerArgs } from '../../src/sandbox/bwrap.js';
import { answerQuery } from '../../src/sandbox/dns.js';
import { buildEnv, parsePassEnv } from '../../src/sandbox/env.js';
import { visibleFiles } from '../../src/sandbox/plan.js';

function query(name: string, type = 1, flags = 0x0100): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const h = Buffer.alloc(12);
  h.writeUInt16BE(0xbeef, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([h, ...labels, Buffer.from([0]), tail]);
}

describe('stub resolver', () => {
  it('answers every A query with 127.0.0.1, keeping id and the name as asked (any letter case)', () => {
    for (const name of ['api.github.com', 'ExAmPlE.CoM', 'x', `${'a'.repeat(63)}.test`]) {
      const q = query(name);
      const a = answerQuery(q);
      assert.ok(a);
      assert.equal(a.readUInt16BE(0), 0xbeef);
      assert.equal(a.readUInt16BE(2) & 0x800f, 0x8000, 'a response with NOERROR');
      assert.equal(a.readUInt16BE(6), 1, 'one answer');
      assert.deepEqual(a.subarray(12, q.length), q.subarray(12), 'the question is echoed unchanged');
      assert.deepEqual([...a.subarray(a.length - 4)], [127, 0, 0, 1]);
    }
  });

  it('gives AAAA, TXT and other types no records, other opcodes NOTIMP', () => {
    for (const type of [28, 16, 255, 15]) {
      const a = answerQuery(query('example.com', type));
      assert.ok(a);
      assert.equal(a.readUInt16BE(2) & 0xf, 0);
      assert.equal(a.readUInt16BE(6), 0);
    }
    const notimp = answerQuery(query('example.com', 1, 0x2800)); // opcode 5 (UPDATE)
    assert.equal((notimp?.readUInt16BE(2) ?? 0) & 0xf, 4);
  });

  it('drops what is not a query it can read: responses, truncation, compression, oversize', () => {
    const q = query('example.com');
    assert.equal(answerQuery(query('example.com', 1, 0x8100)), null, 'a response');
    for (let n = 0; n < q.length; n++) assert.equal(answerQuery(q.subarray(0, n)), null, `truncated at ${n}`);
    const pointer = Buffer.concat([q.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    assert.equal(answerQuery(pointer), null, 'a compression pointer in the question');
    assert.equal(answerQuery(Buffer.concat([q, Buffer.alloc(600)])), null, 'over 512 bytes');
    for (let i = 0; i < 200; i++) answerQuery(randomBytes(1 + (i % 100))); // never throws
  });
});

describe('environment allow-list', () => {
  const policy = {
    secrets: new Map([['api', { name: 'api', source: { kind: 'env', name: 'REAL_API_TOKEN' } }]]),
    agents: new Map([
      ['a', { name: 'a', token: null }],
      ['b', { name: 'b', token: { kind: 'env', name: 'B_TOKEN' } }],
    ]),
  } as unknown as Policy;
  const host = {
    PATH: '/usr/bin',
    HOME: '/home/x',
    LC_TIME: 'C',
    TERM: 'xterm',
    REAL_API_TOKEN: 'real-secret',
    B_TOKEN: 'tok-b',
    AWS_SECRET_ACCESS_KEY: 'k',
    SSH_AUTH_SOCK: '/run/ssh',
    COPY: 'real-secret',
    OK_VAR: 'fine',
  };

  it('passes the allow-list, LC_*, named variables and everything the env builder produced', () => {
    const env = buildEnv({ host, produced: { HTTPS_PROXY: 'http://a:t@127.0.0.1:8750', AWS_CA_BUNDLE: '/ca/bundle.pem' }, pass: ['OK_VAR'], policy });
    assert.deepEqual(env, {
      PATH: '/usr/bin',
      HOME: '/home/x',
      TERM: 'xterm',
      LC_TIME: 'C',
      OK_VAR: 'fine',
      HTTPS_PROXY: 'http://a:t@127.0.0.1:8750',
      AWS_CA_BUNDLE: '/ca/bundle.pem',
    });
  });

  it('refuses to pass a secret source, an agent token, a host socket, or a copy of a secret value', () => {
    assert.throws(() => buildEnv({ host, produced: {}, pass: ['REAL_API_TOKEN'], policy }), /source of secret "api"/);
    assert.throws(() => buildEnv({ host, produced: {}, pass: ['B_TOKEN'], policy }), /agent "b"'s proxy token/);
    assert.throws(() => buildEnv({ host, produced: {}, pass: ['SSH_AUTH_SOCK'], policy }), /host socket/);
    assert.throws(() => buildEnv({ host, produced: {}, pass: ['COPY'], policy }), /value is a secret's/);
    assert.throws(() => parsePassEnv(['A,B=c']), /variable names/);
    assert.deepEqual(parsePassEnv(['A,B', 'C']), ['A', 'B', 'C']);
  });
});

describe('sandbox filesystem', () => {
  it('shows files the CA variables name inside hidden directories, never a private file or key', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'turret-vis-'));
    const file = (n: string, s: string): string => {
      writeFileSync(path.join(dir, n), s);
      return path.join(dir, n);
    };
    const cert = file('ca.crt', '-----BEGIN CERTIFICATE-----\n');
    const key = file('turret.key', 'k');
    const pem = file('mixed.pem', '-----BEGIN PRIVATE KEY-----\n');
    const outside = mkdtempSync(path.join(tmpdir(), 'turret-vis2-'));
    writeFileSync(path.join(outside, 'x.crt'), 'x');
    const v = visibleFiles({ A: cert, B: `--require ${key}`, C: pem, D: path.join(outside, 'x.crt'), E: 'not a path' }, [dir]);
    assert.deepEqual([...v.keys()], [cert]);
  });

  it('mounts data files before the hidden directories turn read-only, and the command last', () => {
    const a = innerArgs({ cwd: '/w', writable: ['/x'], hidden: ['/ca'], emptied: [], data: [{ fd: 5, dest: '/ca/ca.crt' }] }, 65534, 65534, 4);
    const at = (s: string): number => a.indexOf(s);
    assert.ok(at('--tmpfs') < at('--ro-bind-data') && at('--ro-bind-data') < at('--remount-ro'));
    assert.ok(a.includes('--disable-userns') && a.includes('--unshare-pid') && a.includes('--unshare-ipc') && a.includes('--unshare-uts'));
    assert.equal(a.at(-2), '--chdir');
  });
});
