/**
 * Response header sections a hostile upstream can send: many fields (100, 1,000), a head just
 * under and just over 64 KiB, values with obs-text bytes (0x80-0xFF), field names that are not
 * tokens (a space, parentheses, a control byte, an empty name), a value with a NUL or a bare CR,
 * a status below 100 (llhttp reads any three digits), fields and trailers named like
 * Object.prototype's members (`constructor`, `__proto__`, `toString`).
 * Pinned as main (undici) does it today: what is valid is relayed as sent, what is not is a 502
 * upstream_protocol_error with one record; the proxy serves the next request to the same origin.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { caseOrEcho } from '../helpers/h1-upstream.js';
import { bodyOf, useH1, expectRefused } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';

const head = (fields: string): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n${fields}\r\nok`;
const many = (n: number): string => Array.from({ length: n }, (_, i) => `X-F-${i}: v${i}\r\n`).join('');
/** The length of the one field's value that pads the whole head (up to its blank line) to `total` bytes. */
const padFor = (total: number): number => total - (head('X-Pad: \r\n').length - 2);
const sized = (total: number): string => head(`X-Pad: ${'p'.repeat(padFor(total))}\r\n`);

interface Case {
  name: string;
  answer: string;
  /** Valid: the client gets a 200 and check() holds. Otherwise: a 502 with this code. */
  refused?: string;
  check?: (fields: Array<[string, string]>, raw: Buffer) => void;
}

const CASES: Case[] = [
  {
    name: '100 fields',
    answer: head(many(100)),
    check: (f) => assert.equal(f.filter(([k]) => k.toLowerCase().startsWith('x-f-')).length, 100),
  },
  {
    name: '1,000 fields',
    answer: head(many(1000)),
    check: (f) => {
      const xs = f.filter(([k]) => k.toLowerCase().startsWith('x-f-'));
      assert.equal(xs.length, 1000);
      assert.deepEqual(xs[999], ['x-f-999', 'v999']);
    },
  },
  { name: 'a head of 63 KiB', answer: sized(63 * 1024), check: (f) => assert.equal(f.find(([k]) => k.toLowerCase() === 'x-pad')?.[1].length, padFor(63 * 1024)) },
  { name: 'a head of 65 KiB', answer: sized(65 * 1024), refused: 'upstream_protocol_error' },
  {
    name: 'a value with obs-text bytes',
    answer: head('X-Obs: caf\xe9 \x80\xff end\r\n'),
    check: (_f, raw) => assert.ok(raw.includes(Buffer.from('caf\xe9 \x80\xff end', 'latin1')), 'the obs-text bytes are relayed as they came'),
  },
  { name: 'a field name with a space', answer: head('Bad Name: x\r\n'), refused: 'upstream_protocol_error' },
  { name: 'a field name with parentheses', answer: head('X(y): z\r\n'), refused: 'upstream_protocol_error' },
  { name: 'a field name with a control byte', answer: head('X-A\x01: b\r\n'), refused: 'upstream_protocol_error' },
  { name: 'an empty field name', answer: head(': nameless\r\n'), refused: 'upstream_protocol_error' },
  { name: 'a value with a NUL', answer: head('X-Nul: a\x00b\r\n'), refused: 'upstream_protocol_error' },
  { name: 'a value with a bare CR', answer: head('X-Cr: a\rb\r\n'), refused: 'upstream_protocol_error' },
  {
    // Names of Object.prototype's members, each once and `constructor` twice (a repeated field
    // becomes a list): fields like any other, relayed; they once stopped the whole process.
    name: 'fields named constructor (twice), __proto__, toString, hasOwnProperty and valueOf',
    answer: head('constructor: c1\r\nConstructor: c2\r\n__proto__: p\r\ntoString: t\r\nhasOwnProperty: h\r\nvalueOf: v\r\n'),
    check: (f) => {
      const got = f.filter(([k]) => ['constructor', '__proto__', 'tostring', 'hasownproperty', 'valueof'].includes(k.toLowerCase())).map(([k, v]) => `${k.toLowerCase()}=${v}`);
      assert.deepEqual(got.sort(), ['__proto__=p', 'constructor=c1', 'constructor=c2', 'hasownproperty=h', 'tostring=t', 'valueof=v']);
    },
  },
  {
    // The fields object (upstream-h1.ts fieldsOf) against names that are array indices and
    // names that repeat in other cases: each a field, every value kept in its order.
    name: 'fields named 0 and 1, a field repeated as X-Dup / x-DUP / x-dup',
    answer: head('X-Dup: d1\r\n1: one\r\nx-DUP: d2\r\n0: zero\r\nx-dup: d3\r\n'),
    check: (f) => {
      const got = f.filter(([k]) => ['0', '1', 'x-dup'].includes(k.toLowerCase())).map(([k, v]) => `${k.toLowerCase()}=${v}`);
      assert.deepEqual(
        got.filter((x) => x.startsWith('x-dup')),
        ['x-dup=d1', 'x-dup=d2', 'x-dup=d3'],
      );
      assert.deepEqual(got.filter((x) => !x.startsWith('x-dup')).sort(), ['0=zero', '1=one']);
    },
  },
  {
    // Two Connection lines in odd case naming fields (themselves repeated, in another case):
    // none of them, nor Connection, Keep-Alive or a field named Close, reaches the client.
    name: 'Connection lines naming repeated fields, and close',
    answer: head('Connection: X-Hop\r\nX-HOP: a\r\nconnection: KEEP-ALIVE,\tx-Other , close\r\nx-hop: b\r\nX-Other: c\r\nClose: d\r\nKeep-Alive: timeout=5\r\nX-Keep: e\r\n'),
    check: (f, raw) => {
      const names = f.map(([k]) => k.toLowerCase());
      for (const gone of ['x-hop', 'x-other', 'close', 'keep-alive']) assert.ok(!names.includes(gone), `${gone} is dropped`);
      assert.deepEqual(
        f.filter(([k]) => k.toLowerCase() === 'x-keep').map(([, v]) => v),
        ['e'],
      );
      assert.ok(!raw.includes('X-Hop') && !raw.includes('x-hop'), 'a field Connection names is not relayed');
    },
  },
  { name: 'an obs-fold line', answer: head('X-Fold: a\r\n b\r\n'), refused: 'upstream_protocol_error' },
  {
    name: 'chunked, with trailers named constructor (twice) and __proto__',
    answer:
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: constructor, __proto__\r\n\r\n2\r\nok\r\n0\r\nconstructor: t1\r\nconstructor: t2\r\n__proto__: t3\r\n\r\n',
  },
  {
    name: 'a status below 100 with a body, then a 200',
    answer: 'HTTP/1.1 000 X\r\nContent-Length: 5\r\n\r\nEVIL!HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok',
    refused: 'upstream_protocol_error',
  },
];

describe('hostile response header sections', () => {
  const h = useH1();
  let n = 0;

  for (const k of CASES) {
    it(`${k.name}: ${k.refused ? `502 ${k.refused}` : 'relayed'}, one record, the next request served`, async () => {
      const up = await h.ups.start(caseOrEcho((c) => c.send(k.answer)));
      const p = `/headers/${++n}/case`;
      const r = await h.px.send(up.port, p);
      if (k.refused) await expectRefused(h.px, r, p, k.refused);
      else {
        assert.equal(r.parsed.problem, null);
        assert.equal(r.final?.status, 200, r.raw.toString('latin1').slice(0, 300));
        assert.equal(bodyOf(r), 'ok');
        k.check?.(r.final!.headers, r.raw);
        assert.equal((await h.px.record(p)).outcome, 'completed');
      }
      await h.px.servesNext(up.port, `/headers/${n}/next`, p);
    });
  }

  it('no upstream script failed', () => {
    assert.deepEqual(h.ups.errors(), []);
  });
});
