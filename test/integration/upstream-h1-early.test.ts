/**
 * An upstream that stops reading a request body before it has all of it: it answers early (413,
 * complete, then FIN) while the client is still uploading, or it resets in the middle of the upload
 * without an answer. Whatever the client was doing, it did not close: the record names the
 * upstream's doing (its 413, completed; or 502 upstream_closed, failed), never client_closed, and
 * the client gets the upstream's answer or the 502. Exactly one record; the proxy serves the next
 * request to the same origin.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { echoPaths } from '../helpers/h1-upstream.js';
import { exchanged, upload, useH1 } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';

const MiB = 1024 * 1024;

describe('an upstream that stops reading the request body', () => {
  const h = useH1();

  it('an upstream that answers 413 after 64 KiB of an 8 MiB upload, then FIN: the client gets the 413, one record with status 413', async () => {
    const up = await h.ups.start(async (c) => {
      if (c.id > 0) return echoPaths(c);
      await c.head(0);
      await up.waitFor(() => c.firstBodyBytes() >= 64 * 1024, 'the first 64 KiB of the upload');
      await c.send('HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!');
      c.end();
    });
    const p = '/early/413/case';
    const { s, all } = h.px.post(up.port, p, `Content-Length: ${8 * MiB}\r\n`);
    upload(s, 8 * MiB, Buffer.alloc(64 * 1024, 0x61));
    const r = exchanged(await all, 'POST');
    const text = r.raw.toString('latin1');
    assert.equal(r.final?.status, 413, text.slice(0, 400));
    assert.equal(r.final?.body.toString(), 'too big!');
    const rec = await h.px.record(p);
    assert.equal(rec.status, 413, JSON.stringify(rec));
    assert.equal(rec.outcome, 'completed', JSON.stringify(rec));
    assert.notEqual(rec.code, 'client_closed');
    await h.px.servesNext(up.port, '/early/413/next', p);
  });

  it('an upstream that resets in the middle of an upload without answering: 502 upstream_closed, failed, one record', async () => {
    const up = await h.ups.start(async (c) => {
      if (c.id > 0) return echoPaths(c);
      await c.head(0);
      await up.waitFor(() => c.firstBodyBytes() >= 64 * 1024, 'the first 64 KiB of the upload');
      c.reset();
    });
    const p = '/early/reset/case';
    const { s, all } = h.px.post(up.port, p, `Content-Length: ${4 * MiB}\r\n`);
    upload(s, 4 * MiB, Buffer.alloc(64 * 1024, 0x62));
    const r = exchanged(await all, 'POST');
    const text = r.raw.toString('latin1');
    assert.equal(r.final?.status, 502, text.slice(0, 400));
    assert.equal(header(r.final!, 'x-turret-error')[0], 'upstream_closed');
    const rec = await h.px.record(p);
    assert.equal(rec.code, 'upstream_closed', JSON.stringify(rec));
    assert.equal(rec.outcome, 'failed');
    assert.equal(rec.status, 502);
    await h.px.servesNext(up.port, '/early/reset/next', p);
  });

  it('no upstream script failed', () => {
    assert.deepEqual(h.ups.errors(), []);
  });
});
