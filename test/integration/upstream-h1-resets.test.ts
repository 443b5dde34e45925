/**
 * An upstream that breaks the exchange at every phase, by RST or FIN: during the TLS handshake,
 * right after the request head, in the middle of the response head, after a head whose body never
 * starts, in the middle of a chunk, inside a chunk-size line, after the last chunk before its CRLF,
 * in the middle of the trailers, in the middle of a long Content-Length body. Where the head has
 * gone out, the upstream breaks only after the client has received body bytes (an event, so
 * "head out" is never a race). Each exchange has exactly ONE record with its cause; the client
 * gets a 502 with that code when nothing was sent yet, otherwise a response it can tell was cut
 * (no chunked terminator, fewer bytes than announced); the proxy serves the next request to the
 * same origin.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { caseOrEcho, echoPaths, type H1Conn } from '../helpers/h1-upstream.js';
import { bodyOf, type Opened, useH1, withClient, expectRefused, expectCut } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';

const CHUNKED_HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n';
// With a line feed: the scrubber releases held bytes up to the last one after a quiet spell
// (respond-upstream.ts IDLE_FLUSH_MS), so these reach the client while the upstream waits.
const FIRST_CHUNK = 'b\r\nfirst-part\n\r\n';

interface Case {
  name: string;
  /** The upstream's side: writes, waits for the client (`client.seen`), breaks. */
  run: (c: H1Conn, client: Opened) => Promise<void>;
  /** Nothing reached the client before the break: a 502 with this code. */
  refused?: string;
  /** The head went out: the client saw these body bytes and then a cut. */
  cut?: string;
  /** The record's code. */
  code: string;
}

const breakWith = (how: 'reset' | 'end', c: H1Conn): void => (how === 'reset' ? c.reset() : c.end());

function cases(how: 'reset' | 'end'): Case[] {
  const closed = 'upstream_closed';
  return [
    { name: 'right after the request head', run: async (c) => breakWith(how, c), refused: closed, code: closed },
    ...(
      [
        ['in the middle of the response head', 'HTTP/1.1 200 OK\r\nContent-Type: text/pl'],
        ['after a head announcing 100 000 bytes, before any', 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n'],
      ] as const
    ).map(([name, bytes]): Case => ({
      name,
      run: async (c) => {
        await c.send(bytes);
        breakWith(how, c);
      },
      refused: closed,
      code: closed,
    })),
    ...(
      [
        ['in the middle of a chunk', '10\r\nsecond'],
        ['inside a chunk-size line', '1'],
        ['after the last chunk, before its CRLF', '0\r\n'],
        ['in the middle of the trailers', '0\r\nX-Check: abc\r\nX-Oth'],
      ] as const
    ).map(([name, tail]): Case => ({
      name,
      // The head and a first chunk; once the client has them, the tail and the break.
      run: async (c, client) => {
        await c.send(CHUNKED_HEAD, FIRST_CHUNK);
        await client.seen('first-part');
        await c.send(tail);
        breakWith(how, c);
      },
      cut: 'first-part',
      code: closed,
    })),
    {
      name: 'in the middle of a 100 000-byte Content-Length body',
      run: async (c, client) => {
        await c.send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n', 'first-part', 'x'.repeat(70_000));
        await client.seen('first-part');
        breakWith(how, c);
      },
      cut: 'first-part',
      code: closed,
    },
  ];
}

describe('an upstream that breaks the exchange at every phase', () => {
  const h = useH1();
  let n = 0;

  for (const how of ['reset', 'end'] as const) {
    for (const k of cases(how)) {
      const verdict = k.refused ? `502 ${k.refused}` : 'a cut response';
      it(`${how === 'reset' ? 'RST' : 'FIN'} ${k.name}: ${verdict}, one record (${k.code}), the next request served`, async () => {
        const w = withClient(k.run);
        const up = await h.ups.start(w.script);
        const p = `/break/${++n}/case`;
        const r = await w.attach(h.px.open(up.port, p)).done;
        if (k.refused) await expectRefused(h.px, r, p, k.refused);
        else {
          expectCut(r, k.cut!);
          assert.ok(!/\r\n0\r\n(.*\r\n)*\r\n$/.test(r.raw.toString('latin1')), 'no chunked terminator');
          const rec = await h.px.record(p);
          assert.equal(rec.code, k.code, JSON.stringify(rec));
          // The upstream failed the exchange, though the head was out (aborted is the client's);
          // the record's status is the 200 whose body was cut.
          assert.equal(rec.outcome, 'failed', JSON.stringify(rec));
          assert.equal(rec.status, 200);
        }
        await h.px.servesNext(up.port, `/break/${n}/next`, p);
      });
    }
  }

  for (const when of ['FIN on accept', 'RST after the ClientHello'] as const) {
    it(`an upstream TLS handshake cut by ${when}: 502 upstream_tls_failed inside the tunnel, one record, the next request served`, async () => {
      const up = await h.ups.start(echoPaths, {
        beforeTls: (raw, n) => {
          if (n > 0) return false;
          if (when === 'FIN on accept') raw.end();
          else raw.once('data', () => raw.resetAndDestroy());
          return true;
        },
      });
      const p = `/tls-break/${++n}/case`;
      await expectRefused(h.px, await h.px.sendTls(up.tlsPort, p), p, 'upstream_tls_failed');
      const next = `/tls-break/${n}/next`;
      assert.equal(bodyOf(await h.px.sendTls(up.tlsPort, next)), `own:${next}`);
      await h.px.record(next);
      assert.equal(h.px.records(p).length, 1);
    });
  }

  it('no upstream script failed, and turret is still running', () => {
    assert.deepEqual(h.ups.errors(), []);
    assert.equal(h.px.t.proc.exitCode, null);
    assert.doesNotMatch(h.px.t.stderr(), /uncaught|unhandled/i);
  });
});
