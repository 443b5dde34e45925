/**
 * Slow upstreams against small upstream timeouts (`--limit upstream_headers_timeout=500ms`,
 * `upstream_idle_timeout=500ms`): a head dripped a byte every 100 ms (it would take 30 s; the
 * headers timeout is a bound on the whole head, not on the gap between bytes), a head that stops
 * after its status line, no answer at all, and bodies that stall after their first bytes (chunked,
 * and a Content-Length body). Each ends in exactly one record with code upstream_timeout: a 504
 * when nothing reached the client, a visibly cut response once the head was out. The proxy closes
 * the stalled upstream connection and serves the next request to the same origin. The test waits
 * for those events only; the drip's timer is the upstream's behaviour, not a wait.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { caseOrEcho, type H1Conn } from '../helpers/h1-upstream.js';
import { type Opened, useH1, withClient, expectRefused, expectCut } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';

/** Writes `text` a byte every `ms` until it is written or the connection is gone (bounded by its length). */
async function drip(c: H1Conn, text: string, ms: number): Promise<void> {
  for (const ch of text) {
    if (c.closed) return;
    await c.send(ch);
    await new Promise((r) => setTimeout(r, ms));
  }
}

interface Case {
  name: string;
  run: (c: H1Conn, client: Opened) => Promise<void>;
  /** The head went out before the stall: the client saw this, then a cut. */
  cut?: string;
}

const CASES: Case[] = [
  {
    name: 'a head dripped a byte every 100 ms',
    run: (c) => drip(c, `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Drip: ${'d'.repeat(250)}\r\nContent-Length: 2\r\n\r\nok`, 100),
  },
  {
    name: 'a head that stops after its status line',
    run: async (c) => {
      await c.send('HTTP/1.1 200 OK\r\n');
      await c.gone();
    },
  },
  { name: 'no answer at all', run: (c) => c.gone() },
  {
    name: 'a chunked body that stalls after its first chunk',
    run: async (c) => {
      await c.send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n', 'b\r\nfirst-part\n\r\n');
      await c.gone();
    },
    cut: 'first-part',
  },
  {
    name: 'a chunked body that stalls inside a chunk-size line',
    run: async (c) => {
      await c.send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n', 'b\r\nfirst-part\n\r\n', '1');
      await c.gone();
    },
    cut: 'first-part',
  },
  {
    name: 'a Content-Length body that stalls after 11 of 1000 bytes',
    run: async (c) => {
      await c.send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n', 'first-part\n');
      await c.gone();
    },
    cut: 'first-part',
  },
];

describe('slow upstreams against small upstream timeouts', () => {
  const h = useH1({ args: ['--limit', 'upstream_headers_timeout=500ms', '--limit', 'upstream_idle_timeout=500ms'] });
  let n = 0;

  for (const k of CASES) {
    it(`${k.name}: ${k.cut ? 'a cut response' : '504'}, one upstream_timeout record, the upstream connection closed, the next request served`, async () => {
      const w = withClient(k.run);
      const up = await h.ups.start(w.script);
      const p = `/slow/${++n}/case`;
      const r = await w.attach(h.px.open(up.port, p)).done;
      if (k.cut) {
        expectCut(r, k.cut);
        const rec = await h.px.record(p);
        assert.equal(rec.code, 'upstream_timeout', JSON.stringify(rec));
        assert.equal(rec.outcome, 'failed');
        assert.equal(rec.status, 200);
      } else {
        await expectRefused(h.px, r, p, 'upstream_timeout', 504);
        assert.ok(!/x-drip/i.test(r.raw.toString('latin1')), 'no part of the dripped head reached the client');
      }
      // The stalled connection is closed by the proxy (never pooled with a half-read response).
      await up.waitFor(() => up.conns[0]?.closed === true, 'the stalled upstream connection to close');
      await h.px.servesNext(up.port, `/slow/${n}/next`, p);
      assert.equal(up.accepted.plain, 2, 'the next request came on a new connection');
    });
  }

  it('no upstream script failed', () => {
    assert.deepEqual(h.ups.errors(), []);
  });
});
