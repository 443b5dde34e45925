/**
 * The audit hand-over ring (src/audit/ring.ts) on its own, both sides in one thread: entries come
 * out whole and in order across the end of the data area (wrap markers) and across the 2^31 wrap
 * of the Int32 positions, a full ring refuses a batch without writing any of it, and a batch too
 * large for one entry is cut, with a line too large for any entry reported and kept as an empty
 * entry so its seq is still passed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'node:test';
import { CON, createRing, PUB, RingReader, RingWriter } from '../../src/audit/ring.js';

const line = (seq: number, extra = ''): string => `{"seq":${seq},"x":"${extra}${randomBytes(1 + (seq % 7)).toString('hex')}"}\n`;
const bytes = (ls: string[]): number => ls.reduce((n, l) => n + Buffer.byteLength(l), 0);

it('entries come out whole and in order across the end of the area and the 2^31 wrap of the positions', () => {
  const sab = createRing(4096);
  const ctl = new Int32Array(sab, 0, 8);
  // 8-aligned, 200 bytes short of 2^31: the positions go negative part way through.
  ctl[PUB] = ctl[CON] = 2 ** 31 - 200;
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  let seq = 0;
  let wrapsSeen = 0;
  for (let round = 0; round < 400; round++) {
    const n = 1 + (round % 9);
    // Multi-byte text too: the ring counts bytes, not characters.
    const ls = Array.from({ length: n }, () => line(++seq, round % 3 === 0 ? 'é€😀' : ''));
    const before = Atomics.load(ctl, PUB);
    assert.equal(w.publish(ls, bytes(ls), seq - n + 1, seq), true, `round ${round}`);
    if (Atomics.load(ctl, PUB) < before) wrapsSeen++;
    const e = r.next();
    assert.ok(e);
    assert.equal(e.first, seq - n + 1);
    assert.equal(e.last, seq);
    assert.equal(r.text(e).toString('utf8'), ls.join(''));
    r.consume();
    assert.equal(r.next(), null);
  }
  assert.equal(wrapsSeen, 1, 'the Int32 positions wrapped once');
});

it('a full ring refuses a batch and writes none of it; room freed by the reader lets it in', () => {
  const sab = createRing(4096);
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  let seq = 0;
  const published: string[][] = [];
  for (;;) {
    const ls = Array.from({ length: 5 }, () => line(++seq));
    if (!w.publish(ls, bytes(ls), seq - 4, seq)) {
      seq -= 5;
      break;
    }
    published.push(ls);
    assert.ok(published.length < 100, 'a 4 KiB ring fills');
  }
  const refused = Array.from({ length: 5 }, (_, i) => line(seq + 1 + i));
  assert.equal(w.wantSpace(bytes(refused)), false, 'no room yet, and the reader is asked to say when there is');
  // The reader takes entries until it reports that room was asked for (the first consume).
  const first = r.next();
  assert.ok(first);
  assert.equal(r.text(first).toString(), published[0]!.join(''));
  assert.equal(r.consume(), true, 'the first freed room is reported');
  for (let e = r.next(), i = 1; e !== null; e = r.next(), i++) {
    assert.equal(r.text(e).toString(), published[i]!.join(''));
    assert.equal(r.consume(), false, 'reported once');
  }
  assert.equal(w.publish(refused, bytes(refused), seq + 1, seq + 5), true);
  const last = r.next();
  assert.ok(last);
  assert.equal(r.text(last).toString(), refused.join(''));
});
