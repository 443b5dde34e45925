/**
 * Secret sources and the encrypted store: values load, rotate, and fail closed (absent, never
 * empty or stale) when a command fails or times out, a store entry is tampered with, moved to
 * another name, or read with another key. Config errors name the problem without the value.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compilePolicy } from '../../src/config/load.js';
import { keyRingFrom } from '../../src/secrets/keys.js';
import { SecretValues } from '../../src/secrets/sources.js';
import { SecretStore, storeKey, STORE_FILE } from '../../src/secrets/store.js';

const dir = (): string => mkdtempSync(path.join(tmpdir(), 'turret-src-'));

describe('encrypted store', () => {
  it('round-trips, keeps ages, and never writes the value in clear', () => {
    const d = dir();
    const v = `fake_store_${randomBytes(16).toString('hex')}`;
    const s = new SecretStore(d, keyRingFrom(randomBytes(32)).storeKey);
    s.set('gh', v, new Date('2024-01-01T00:00:00Z'));
    s.set('gh', `${v}2`, new Date('2024-02-01T00:00:00Z'));
    assert.equal(s.get('gh')?.reveal(), `${v}2`);
    assert.equal(String(s.get('gh')), '[redacted:gh]');
    const info = s.list()[0];
    assert.equal(info?.created.toISOString(), '2024-01-01T00:00:00.000Z');
    assert.equal(info?.updated.toISOString(), '2024-02-01T00:00:00.000Z');
    assert.ok(!readFileSync(path.join(d, STORE_FILE), 'utf8').includes(v));
  });

  it('fails closed on another key, a flipped byte, or an entry copied under another name', () => {
    const d = dir();
    const key = randomBytes(32);
    const s = new SecretStore(d, key);
    s.set('a', 'fake-a');
    s.set('b', 'fake-b');
    assert.equal(new SecretStore(d, randomBytes(32)).get('a'), null);
    const file = path.join(d, STORE_FILE);
    const data = JSON.parse(readFileSync(file, 'utf8'));
    data.entries.b = { ...data.entries.a };
    writeFileSync(file, JSON.stringify(data));
    assert.equal(new SecretStore(d, key).get('b'), null, 'AAD binds the entry to its name');
    const ct = Buffer.from(data.entries.a.ct, 'base64');
    ct[0] = (ct[0] ?? 0) ^ 1;
    data.entries.a.ct = ct.toString('base64');
    writeFileSync(file, JSON.stringify(data));
    assert.equal(new SecretStore(d, key).get('a'), null);
  });

  it('takes its key from TURRET_STORE_KEY when set and refuses a short one', () => {
    const ring = keyRingFrom(randomBytes(32));
    const k = randomBytes(32);
    assert.deepEqual(storeKey(ring, { TURRET_STORE_KEY: k.toString('base64') }), k);
    assert.deepEqual(storeKey(ring, {}), ring.storeKey);
    assert.throws(() => storeKey(ring, { TURRET_STORE_KEY: randomBytes(16).toString('base64') }));
  });
});

describe('sources', () => {
  it('re-reads a file when it changes', () => {
    const f = path.join(dir(), 'tok');
    writeFileSync(f, 'fake-one\n');
    const v = new SecretValues({});
    assert.equal(v.load('t', { kind: 'file', path: f })?.reveal(), 'fake-one');
    writeFileSync(f, 'fake-two-longer\n');
    utimesSync(f, new Date(), new Date(Date.now() + 5000));
    assert.equal(v.load('t', { kind: 'file', path: f })?.reveal(), 'fake-two-longer');
  });

  it('runs commands without a shell and fails closed on error, empty output and timeout', () => {
    const v = new SecretValues({ PATH: process.env.PATH ?? '' });
    const cmd = (argv: string[], timeoutMs = 2000) => v.load('c', { kind: 'command', argv, timeoutMs, refreshMs: 60_000 });
    assert.equal(cmd(['printf', 'fake-cmd\\n'])?.reveal(), 'fake-cmd');
    assert.equal(cmd(['sh', '-c', 'echo fake-partial; exit 3']), null);
    assert.equal(cmd(['true']), null);
    assert.equal(cmd(['echo', '$(id)'])?.reveal(), '$(id)', 'arguments are not shell-expanded');
    const t0 = Date.now();
    assert.equal(cmd(['sleep', '5'], 200), null);
    assert.ok(Date.now() - t0 < 2000, 'the timeout bounds the wait');
    assert.equal(cmd(['/nonexistent/turret-test-binary']), null);
  });
});

describe('secret config', () => {
  const load = (secret: string) => compilePolicy([{ file: 's.yaml', text: `secrets:\n  - ${secret}\n` }]);
  it('reads every option', () => {
    const p = load(
      `{ name: x, from: { command: [pass, show, x], timeout: 2s, refresh: 10m }, hosts: [a.example.com], env: [AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY], methods: [read], paths: ["/v1/**"], query: true, body: true, on_misuse: revoke, aws: { access_key_id: { store: x-id } } }`,
    );
    const d = p.secrets.get('x')!;
    assert.deepEqual(d.source, { kind: 'command', argv: ['pass', 'show', 'x'], timeoutMs: 2000, refreshMs: 600_000 });
    assert.deepEqual(d.env, ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);
    assert.equal(d.query && d.body, true);
    assert.equal(d.onMisuse, 'revoke');
    assert.deepEqual(d.aws?.accessKeyId, { kind: 'store', name: 'x-id' });
    assert.ok(d.paths?.[0]?.test('/v1/a/b'));
  });
  it('rejects inline values without echoing them, and bad options with positions', () => {
    const v = `fake_inline_${randomBytes(8).toString('hex')}`;
    assert.throws(
      () => load(`{ name: x, from: { value: ${v} }, hosts: [a.example.com] }`),
      (e: Error) => !e.message.includes(v) && /s\.yaml:2:\d+: .*must not be written/.test(e.message),
    );
    assert.throws(() => load(`{ name: x, from: { env: A, file: /f }, hosts: [a.example.com] }`), /exactly one of/);
    assert.throws(() => load(`{ name: x, from: { env: A, timeout: 1s }, hosts: [a.example.com] }`), /only to command/);
    assert.throws(() => load(`{ name: x, from: { command: "pass show x" }, hosts: [a.example.com] }`), /list/);
    assert.throws(() => load(`{ name: x, from: { env: A }, hosts: [a.example.com], on_misuse: ignore }`), /on_misuse/);
    assert.throws(() => load(`{ name: x, from: { env: A }, hosts: [a.example.com], methods: [TRACE] }`), /TRACE/);
  });
});
