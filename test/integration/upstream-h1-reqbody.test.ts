/**
 * Request bodies against upstreams that read them their own way: one that reads slowly
 * (backpressure: the bytes the client got rid of minus the bytes the upstream received stay
 * bounded — the proxy never holds the upload), and a chunked upload without a length that streams
 * (the upstream has the first 32 KiB before the client sends the rest). One record each. An
 * upstream that answers early or resets mid-upload: upstream-h1-early.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ok, type H1Conn } from '../helpers/h1-upstream.js';
import { exchanged, useH1 } from '../helpers/h1-proxy.js';

const MiB = 1024 * 1024;

/** Body bytes a connection has received after its first request head. */
const bodyBytes = (c: H1Conn): number => c.firstBodyBytes();

describe('request bodies: backpressure and streaming', () => {
  const h = useH1();

  it('a slow-reading upstream: what the client got rid of minus what the upstream received stays bounded; the body arrives whole', async () => {
    const TOTAL = 256 * MiB;
    const up = await h.ups.start(async (c) => {
      // The upstream reads only while the client is blocked (the pump below resumes it then).
      c.socket.pause();
      const req = await c.request(0);
      await c.send(ok(`got ${req.body.length}`));
    });
    const p = '/slow-reader';
    const { s, all } = h.px.post(up.port, p, `Content-Length: ${TOTAL}\r\n`);
    const chunk = Buffer.alloc(256 * 1024);
    const hash = createHash('sha256');
    let written = 0;
    let maxGap = 0;
    let blocks = 0;
    const gap = (): number => written - s.writableLength - (up.conns[0] ? bodyBytes(up.conns[0]) : 0);
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        up.conns[0]?.socket.pause();
        for (let i = 0; written < TOTAL && i < 10_000; i++) {
          chunk.fill(written / chunk.length);
          hash.update(chunk);
          written += chunk.length;
          if (!s.write(chunk)) {
            blocks++;
            maxGap = Math.max(maxGap, gap());
            up.conns[0]?.socket.resume();
            s.once('drain', pump);
            return;
          }
        }
        maxGap = Math.max(maxGap, gap());
        up.conns[0]?.socket.resume();
        resolve();
      };
      pump();
    });
    const r = exchanged(await all, 'POST');
    // The path between them holds at most the kernel's socket buffers (two sockets each way: at
    // most 4 MiB to send and 32 MiB to receive, net.ipv4.tcp_wmem/tcp_rmem) and the proxy's stream
    // buffers; a proxy that held the upload would show nearly all 256 MiB. Seen: 9-14 MiB.
    assert.ok(maxGap < 96 * MiB, `the proxy held ${(maxGap / MiB).toFixed(1)} MiB of the upload (${blocks} blocks)`);
    assert.equal(r.final?.status, 200, r.raw.toString('latin1').slice(0, 300));
    assert.equal(r.final?.body.toString(), `got ${TOTAL}`);
    const received = up.conns[0]!.requests[0]!.body;
    assert.equal(received.length, TOTAL);
    assert.equal(createHash('sha256').update(received).digest('hex'), hash.digest('hex'), 'the body arrived unchanged');
    assert.equal((await h.px.record(p)).bytes_in, TOTAL);
  });

  it('a chunked upload without a length streams: the upstream has the first chunk before the client sends the second', async () => {
    const up = await h.ups.start(async (c) => {
      const req = await c.request(0);
      await c.send(ok(`got ${req.body.length} ${req.body.toString().slice(0, 5)}`));
    });
    const p = '/chunked-upload';
    const { s, all } = h.px.post(up.port, p, 'Transfer-Encoding: chunked\r\n');
    // Large enough to pass the outbound check's window (it holds back the bytes that could still
    // begin a secret, stages/outbound.ts): 64 KiB.
    const first = 'first-chunk-'.repeat(5462).slice(0, 64 * 1024);
    s.write(`${first.length.toString(16)}\r\n${first}\r\n`);
    await up.waitFor(() => up.conns[0] !== undefined && bodyBytes(up.conns[0]) >= 32 * 1024, 'the first chunk at the upstream');
    const second = 'second-'.repeat(1000);
    s.write(`${second.length.toString(16)}\r\n${second}\r\n0\r\n\r\n`);
    const r = exchanged(await all, 'POST');
    assert.equal(r.final?.status, 200, r.raw.toString('latin1'));
    const got = up.conns[0]!.requests[0]!;
    assert.equal(got.body.toString(), first + second);
    console.log(`# chunked upload framed upstream as ${got.framing}`);
    assert.equal((await h.px.record(p)).outcome, 'completed');
  });

  it('no upstream script failed', () => {
    assert.deepEqual(h.ups.errors(), []);
  });
});
