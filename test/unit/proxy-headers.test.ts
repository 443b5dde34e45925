/**
 * Header hygiene between client and upstream (proxy/stages/headers.ts), on hostile spellings: the
 * Connection header split over several lines and in any letter case, fields it names in another
 * case, duplicated fields, and a response header object that inherits fields it does not own.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clientResponseHeaders, upstreamRequestHeaders } from '../../src/proxy/stages/headers.js';
import { canonicalCase, fieldsOf, LOWER_NAMES } from '../../src/proxy/upstream-h1-call.js';

describe('upstreamRequestHeaders', () => {
  it('drops hop-by-hop fields and every field a Connection line names, in any case and over several lines', () => {
    const raw = [
      'Host',
      'evil.test',
      'CONNECTION',
      'x-a , Keep-Alive',
      'X-A',
      '1',
      'x-keep',
      '2',
      'connection',
      'X-B',
      'x-b',
      '3',
      'x-c',
      '4',
      'X-C',
      '5',
      'Proxy-Authorization',
      'Basic eA==',
      'TE',
      'trailers',
      'Content-Length',
      '9',
    ];
    assert.deepEqual(upstreamRequestHeaders(raw, 'api.test', 8443, 'https'), [
      ['host', 'api.test:8443'],
      ['x-keep', '2'],
      ['x-c', '4'],
      ['X-C', '5'],
    ]);
  });

  it('finds Connection in any case among names of its length, and only there', () => {
    const raw = ['User-Agent', 'x-hop', 'cOnNeCtIoN', '\tx-HOP , close', 'X-Hop', '1', 'Connexion', 'x-keep', 'x-keep', '2', 'close', '3'];
    assert.deepEqual(upstreamRequestHeaders(raw, 'api.test', 443, 'https'), [
      ['host', 'api.test'],
      ['User-Agent', 'x-hop'],
      ['Connexion', 'x-keep'],
      ['x-keep', '2'],
    ]);
  });

  it('without a Connection header keeps every end-to-end field, duplicates in order', () => {
    const raw = ['Accept', 'a', 'X-Dup', '1', 'x-dup', '2', 'Upgrade', 'websocket', 'Keep-Alive', 'timeout=5'];
    assert.deepEqual(upstreamRequestHeaders(raw, '::1', 443, 'https'), [
      ['host', '[::1]'],
      ['Accept', 'a'],
      ['X-Dup', '1'],
      ['x-dup', '2'],
    ]);
  });
});

describe('clientResponseHeaders', () => {
  it('drops hop-by-hop fields and those Connection names (one value or several lines), keeps repeated values', () => {
    const h = {
      connection: ['keep-alive, X-Hop', 'x-other'],
      'x-hop': 'a',
      'x-other': 'b',
      'set-cookie': ['a=1', 'b=2'],
      'keep-alive': 'timeout=5',
      'content-length': '3',
      'transfer-encoding': 'chunked',
      date: 'd',
    };
    assert.deepEqual(clientResponseHeaders(h, true), [
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['content-length', '3'],
      ['date', 'd'],
    ]);
    assert.deepEqual(clientResponseHeaders({ connection: 'close', 'content-length': '3', 'x-a': undefined }, false), []);
  });

  it('reads Connection token by token: spaces and tabs around names, empty items, `close`, a single name, odd case', () => {
    const h = {
      connection: [' \tX-One\t ,, x-TWO ,', 'close', 'keep-alive', 'Upgrade'],
      'x-one': '1',
      'x-two': '2',
      close: 'reserved',
      'x-three': '3',
      upgrade: 'h2c',
      '': 'nameless',
    };
    assert.deepEqual(clientResponseHeaders(h, true), [['x-three', '3']]);
    // One value that names only hop-by-hop fields drops nothing else.
    assert.deepEqual(clientResponseHeaders({ connection: 'Keep-Alive', 'x-a': '1', close: 'c' }, true), [
      ['x-a', '1'],
      ['close', 'c'],
    ]);
    assert.deepEqual(clientResponseHeaders({ connection: 'X-A', 'x-a': ['1', '2'], 'x-ab': '3' }, true), [['x-ab', '3']]);
  });

  it('takes only the object’s own fields, never ones it inherits', () => {
    const inherited = Object.create({ 'x-inherited': 'leak', 0: 'zero' }) as Record<string, string | string[] | undefined>;
    inherited['x-own'] = 'ok';
    assert.deepEqual(clientResponseHeaders(inherited, true), [['x-own', 'ok']]);
  });
});

/**
 * The upstream's fields as the upstream client reads them (upstream-h1-call.ts fieldsOf: common
 * names through a table of their usual spellings, others lower-cased), then what the client gets:
 * every spelling of a name lands in one field, in order, and hop-by-hop fields are dropped
 * whichever path their name took.
 */
describe('fieldsOf, then clientResponseHeaders', () => {
  /** What fieldsOf must equal: each name lower-cased, a repeated field's values in order. */
  function reference(flat: string[]): Array<[string, string | string[]]> {
    const m = new Map<string, string[]>();
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const k = (flat[i] as string).toLowerCase();
      m.set(k, [...(m.get(k) ?? []), flat[i + 1] as string]);
    }
    return [...m].map(([k, v]) => [k, v.length === 1 ? (v[0] as string) : v]);
  }

  /** `Content-Type` for `content-type`. */
  const wordCase = (n: string): string => n.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase());

  /** A deterministic generator (no Math.random: a failure can be replayed). */
  function rng(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
      return s / 2 ** 32;
    };
  }

  it('the table maps each spelling to that spelling lower-cased, and holds each lower-case name under itself', () => {
    assert.ok(LOWER_NAMES.size > 40);
    for (const [spelling, lower] of LOWER_NAMES) {
      assert.equal(lower, spelling.toLowerCase(), spelling);
      assert.equal(LOWER_NAMES.get(lower), lower, lower);
      assert.equal(canonicalCase(lower).toLowerCase(), lower);
    }
    assert.equal(canonicalCase('x-content-type-options'), 'X-Content-Type-Options');
    assert.equal(canonicalCase('www-authenticate'), 'Www-Authenticate');
  });

  it('any spelling of common and odd names, repeated: the same fields as lower-casing each name (400 heads)', () => {
    // Names from the table (in both of its spellings), names next to them, and names that are
    // Object.prototype's members.
    const names = [
      'content-type',
      'content-length',
      'date',
      'connection',
      'keep-alive',
      'transfer-encoding',
      'set-cookie',
      'cache-control',
      'etag',
      'vary',
      'server',
      'www-authenticate',
      'x-content-type-options',
      'location',
      'trailer',
    ].concat(['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'x-custom', 'content-typ', 'content-type-x', 'date2']);
    const next = rng(15);
    for (let n = 0; n < 400; n++) {
      const flat: string[] = [];
      const count = 1 + Math.floor(next() * 12);
      for (let i = 0; i < count; i++) {
        const base = names[Math.floor(next() * names.length)] as string;
        const r = next();
        // The table's two spellings, all upper-case, or each letter's case at random.
        const name = r < 0.3 ? base : r < 0.6 ? wordCase(base) : r < 0.7 ? base.toUpperCase() : [...base].map((c) => (next() < 0.5 ? c.toUpperCase() : c)).join('');
        flat.push(name, `v${n}-${i}`);
      }
      const got = fieldsOf(flat);
      assert.deepEqual(
        Object.keys(got),
        reference(flat).map(([k]) => k),
        flat.join(' '),
      );
      assert.deepEqual(
        Object.keys(got).map((k) => [k, got[k]]),
        reference(flat),
        flat.join(' '),
      );
    }
  });

  it('a Connection line of exactly `keep-alive` names nothing more; the other lines still name their fields', () => {
    assert.deepEqual(clientResponseHeaders(fieldsOf(['Connection', 'keep-alive', 'X-A', '1', 'Keep-Alive', 'timeout=5']), true), [['x-a', '1']]);
    assert.deepEqual(clientResponseHeaders(fieldsOf(['Connection', 'keep-alive', 'connection', 'x-a', 'X-A', '1', 'x-b', '2']), true), [['x-b', '2']]);
    assert.deepEqual(clientResponseHeaders(fieldsOf(['Connection', 'x-a', 'Connection', 'keep-alive', 'X-A', '1', 'x-b', '2']), true), [['x-b', '2']]);
    assert.deepEqual(clientResponseHeaders(fieldsOf(['Connection', 'keep-alive, x-b', 'X-A', '1', 'x-b', '2']), true), [['x-a', '1']]);
    assert.deepEqual(upstreamRequestHeaders(['Connection', 'x-a', 'connection', 'keep-alive', 'X-A', '1', 'x-b', '2'], 'h.test', 443, 'https'), [
      ['host', 'h.test'],
      ['x-b', '2'],
    ]);
  });

  it('hop-by-hop fields and the fields Connection names are dropped in any spelling; repeated end-to-end fields are kept in order', () => {
    const flat = [
      'Content-Type',
      'text/plain',
      'CONNECTION',
      'X-Named, Keep-Alive',
      'connection',
      'x-other',
      'Keep-Alive',
      'timeout=5',
      'KEEP-ALIVE',
      'max=9',
      'Transfer-Encoding',
      'chunked',
      'Trailer',
      'x-t',
      'Upgrade',
      'h2c',
      'TE',
      'trailers',
      'Proxy-Connection',
      'keep-alive',
      'proxy-Authenticate',
      'Basic',
      'x-NAMED',
      'hidden-1',
      'X-Other',
      'hidden-2',
      'Set-Cookie',
      'a=1',
      'set-cookie',
      'b=2',
      'SET-COOKIE',
      'c=3',
      'content-type',
      'text/html',
      'Constructor',
      'k',
      '__proto__',
      'p',
      'Content-Length',
      '12',
      'Date',
      'Wed, 02 Dec 2026 00:00:00 GMT',
    ];
    assert.deepEqual(clientResponseHeaders(fieldsOf(flat), true), [
      ['content-type', 'text/plain'],
      ['content-type', 'text/html'],
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['set-cookie', 'c=3'],
      ['constructor', 'k'],
      ['__proto__', 'p'],
      ['content-length', '12'],
      ['date', 'Wed, 02 Dec 2026 00:00:00 GMT'],
    ]);
    assert.deepEqual(
      clientResponseHeaders(fieldsOf(flat), false).map(([k]) => k),
      ['content-type', 'content-type', 'set-cookie', 'set-cookie', 'set-cookie', 'constructor', '__proto__', 'date'],
    );
  });
});
