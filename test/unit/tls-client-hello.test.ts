/**
 * SNI from a ClientHello (transparent mode): real hellos from Node's TLS client (captured from a
 * Duplex, no socket), split at every byte and across records, and hostile ones: no SNI, two
 * SNIs, two names, non-ASCII names, truncations, lies about lengths, tiny-record floods.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { looksLikeTls, parseClientHello } from '../../src/tls/client-hello.js';

/** The first flight Node's TLS client writes for `servername` (undefined: no SNI). */
async function realHello(servername: string | undefined): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const wire = new Duplex({
      read() {},
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
        if (!done) {
          done = true;
          setImmediate(() => {
            s.destroy();
            resolve(Buffer.concat(chunks));
          });
        }
      },
    });
    const s = tls.connect({ socket: wire, ...(servername === undefined ? {} : { servername }), rejectUnauthorized: false });
    s.on('error', () => {});
  });
}

/** Minimal ClientHello with the given extensions (type, body). */
function hello(exts: Array<[number, Buffer]>): Buffer {
  const ext = Buffer.concat(exts.map(([t, b]) => Buffer.concat([u16(t), u16(b.length), b])));
  const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32), Buffer.from([0]), u16(2), Buffer.from([0x13, 0x01]), Buffer.from([1, 0]), u16(ext.length), ext]);
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  return record(hs);
}
const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const record = (frag: Buffer): Buffer => Buffer.concat([Buffer.from([0x16, 3, 1]), u16(frag.length), frag]);
function sni(...names: Array<[number, string | Buffer]>): Buffer {
  const list = Buffer.concat(
    names.map(([t, n]) => {
      const b = Buffer.isBuffer(n) ? n : Buffer.from(n, 'latin1');
      return Buffer.concat([Buffer.from([t]), u16(b.length), b]);
    }),
  );
  return Buffer.concat([u16(list.length), list]);
}

describe('parseClientHello', () => {
  it('reads the SNI of a real ClientHello, and needs more until it is complete', async () => {
    const h = await realHello('echo.turret.test');
    assert.ok(looksLikeTls(h[0]));
    assert.deepEqual(parseClientHello(h), { kind: 'hello', sni: 'echo.turret.test' });
    for (let i = 0; i < h.length; i++) {
      const r = parseClientHello(h.subarray(0, i));
      assert.equal(r.kind, 'need_more', `prefix of ${i} bytes`);
      if (r.kind === 'need_more') assert.ok(r.atLeast > i);
    }
  });

  it('reports a real ClientHello without SNI as such', async () => {
    assert.deepEqual(parseClientHello(await realHello(undefined)), { kind: 'hello', sni: null });
  });

  it('reassembles a ClientHello split across records', () => {
    const whole = hello([[0, sni([0, 'split.turret.test'])]]);
    const hs = whole.subarray(5);
    const split = Buffer.concat([record(hs.subarray(0, 3)), record(hs.subarray(3, 40)), record(hs.subarray(40))]);
    assert.deepEqual(parseClientHello(split), { kind: 'hello', sni: 'split.turret.test' });
  });

  it('refuses hostile hellos', () => {
    const bad: Array<[string, Buffer]> = [
      [
        'two server_name extensions',
        hello([
          [0, sni([0, 'a.test'])],
          [0, sni([0, 'b.test'])],
        ]),
      ],
      ['two host names', hello([[0, sni([0, 'a.test'], [0, 'b.test'])]])],
      ['a NUL in the name', hello([[0, sni([0, 'a.test\0.evil'])]])],
      ['a space in the name', hello([[0, sni([0, 'a .test'])]])],
      ['non-ASCII name', hello([[0, sni([0, Buffer.from('bücher.test', 'utf8')])]])],
      ['empty name', hello([[0, sni([0, ''])]])],
      ['list length lies', hello([[0, Buffer.concat([u16(99), Buffer.from([0]), u16(1), Buffer.from('a')])]])],
      ['not a handshake record', Buffer.concat([Buffer.from([0x17, 3, 3]), u16(4), Buffer.from([1, 0, 0, 0])])],
      ['not a ClientHello', record(Buffer.from([2, 0, 0, 1, 0]))],
      ['zero-length record', Buffer.from([0x16, 3, 1, 0, 0])],
      ['record too long', Buffer.concat([Buffer.from([0x16, 3, 1]), u16(16_385)])],
      ['not TLS 1.x', Buffer.from([0x16, 2, 0, 0, 4, 1, 0, 0, 0])],
      ['huge declared hello', record(Buffer.from([1, 0xff, 0xff, 0xff]))],
      ['empty cipher list', record(Buffer.concat([Buffer.from([1, 0, 0, 38, 3, 3]), Buffer.alloc(32), Buffer.from([0]), u16(0), Buffer.from([0])]))],
    ];
    for (const [name, b] of bad) assert.equal(parseClientHello(b).kind, 'invalid', name);
  });

  it('refuses a hello spread over a flood of one-byte records (bounded work)', () => {
    const hs = hello([[0, sni([0, 'a.test'])]]).subarray(5);
    const flood = Buffer.concat([...hs].map((b) => record(Buffer.from([b]))));
    assert.equal(parseClientHello(flood).kind, 'invalid');
  });

  it('keeps an unknown name type out of the answer and takes the host_name', () => {
    assert.deepEqual(parseClientHello(hello([[0, sni([1, 'x'], [0, 'a.test'])]])), { kind: 'hello', sni: 'a.test' });
    assert.deepEqual(parseClientHello(hello([[0x10, Buffer.from([0, 3, 2, 0x68, 0x32])]])), { kind: 'hello', sni: null });
  });

  it('tells TLS from HTTP by the first byte', () => {
    assert.equal(looksLikeTls('G'.charCodeAt(0)), false);
    assert.equal(looksLikeTls(undefined), false);
  });
});
