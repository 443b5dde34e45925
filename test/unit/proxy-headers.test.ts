/**
 * Header hygiene between client and upstream (proxy/stages/headers.ts), on hostile spellings: the
 * Connection header split over several lines and in any letter case, fields it names in another
 * case, duplicated fields, and a response header object that inherits fields it does not own.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clientResponseHeaders, upstreamRequestHeaders } from '../../src/proxy/stages/headers.js';

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
