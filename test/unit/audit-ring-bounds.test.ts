/**
 * The hand-over ring (src/audit/ring.ts) at its edges, both sides in one thread:
 * - from thousands of reachable states (every 8-byte offset of the area, every fill level, entries
 *   that straddle the end), the largest entry the free room can hold is taken (so the ring ends
 *   exactly full), every entry still in it reads back whole and in order, and one byte more is
 *   refused without a single byte of the ring changed;
 * - an empty ring takes a line of maxText bytes at every offset (the promise behind maxText), also
 *   when the line is only 3-byte characters sized by the "3 bytes per UTF-16 unit" bound, and
 *   4-byte characters and lone surrogates come back as Buffer.from would encode them.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { CON, createRing, PUB, RingReader, RingWriter } from '../../src/audit/ring.js';

const SIZE = 4096;
const HEAD = 24;

/** A deterministic pseudo-random sequence (no Math.random: a failure must replay). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const text = (n: number, tag: number): string => (tag.toString(36) + '#'.repeat(n)).slice(0, n);

/** The text bytes the free room can hold in one entry: the part up to the end, or the part after the wrap. */
function roomFor(pub: number, con: number): number {
  const free = SIZE - ((pub - con) | 0);
  const off = pub & (SIZE - 1);
  const tail = SIZE - off;
  return (free <= tail ? free : Math.max(tail, free - tail)) - HEAD;
}

function copy(sab: SharedArrayBuffer): SharedArrayBuffer {
  const c = new SharedArrayBuffer(sab.byteLength);
  new Uint8Array(c).set(new Uint8Array(sab));
  return c;
}

/** Every entry between the consumed and the published position, as text, in order (consumes them). */
function drainAll(sab: SharedArrayBuffer): string[] {
  const r = new RingReader(sab);
  const out: string[] = [];
  for (let e = r.next(); e !== null; e = r.next()) out.push(r.text(e).toString('utf8'));
  r.consume();
  return out;
}

it('the largest entry the free room holds is taken (the ring ends exactly full); one byte more is refused and changes nothing', () => {
  const next = rng(7);
  let checked = 0;
  let exactlyFull = 0;
  let straddled = 0;
  for (let run = 0; run < 40; run++) {
    const sab = createRing(SIZE);
    const ctl = new Int32Array(sab, 0, 8);
    // Every 8-byte start offset over the runs, and positions near the Int32 wrap in some.
    const start = ((run % 2 === 0 ? 0 : 2 ** 31 - SIZE) + ((run * 8 * 13) % SIZE)) | 0;
    ctl[PUB] = ctl[CON] = start;
    const w = new RingWriter(sab);
    const r = new RingReader(sab);
    let queued: string[] = [];
    let tag = 0;
    for (let step = 0; step < 120; step++) {
      const pub = Atomics.load(ctl, PUB);
      const con = Atomics.load(ctl, CON);
      const room = roomFor(pub, con);
      if (room >= 0) {
        // Exactly what fits: accepted, the ring then holds every earlier entry intact.
        const c = copy(sab);
        const big = text(room, ++tag);
        assert.equal(new RingWriter(c).publish(big, room, tag, tag), true, `room ${room} at pub ${pub} con ${con}`);
        const cc = new Int32Array(c, 0, 8);
        if (((cc[PUB]! - cc[CON]!) | 0) === SIZE) exactlyFull++;
        if ((pub & (SIZE - 1)) + HEAD + room > SIZE) straddled++;
        assert.deepEqual(drainAll(c), [...queued, big]);
      }
      // One byte more: refused, and not a byte of the ring moved.
      const c2 = copy(sab);
      const before = Buffer.from(new Uint8Array(c2)).toString('hex');
      assert.equal(new RingWriter(c2).publish(text(Math.max(room + 1, 0), ++tag), Math.max(room + 1, 0), tag, tag), false);
      assert.equal(Buffer.from(new Uint8Array(c2)).toString('hex'), before);
      checked++;
      // Move on: publish a random entry (if it fits) or consume everything read so far.
      if (next() < 0.6) {
        const n = Math.floor(next() * 700);
        const t = text(n, ++tag);
        if (w.publish(t, n, tag, tag)) queued.push(t);
      } else {
        const k = Math.floor(next() * (queued.length + 1));
        for (let i = 0; i < k; i++) {
          const e = r.next();
          assert.ok(e);
          assert.equal(r.text(e).toString('utf8'), queued[i]);
        }
        r.consume();
        queued = queued.slice(k);
      }
    }
  }
  assert.ok(checked === 40 * 120);
  // The walk must really have reached the edges it is about.
  assert.ok(exactlyFull > 100, `exactly full ${exactlyFull} times`);
  assert.ok(straddled > 100, `straddling the end ${straddled} times`);
});

it('an empty ring takes a line of maxText bytes at every offset, also one of 3-byte characters sized 3 per UTF-16 unit', () => {
  const sab = createRing(SIZE);
  const ctl = new Int32Array(sab, 0, 8);
  const w = new RingWriter(sab);
  const max = w.maxText;
  assert.equal(max, SIZE / 2 - HEAD);
  const euro = '€'.repeat(Math.floor(max / 3)); // 3 UTF-8 bytes per unit: the bound is exact
  // 4-byte characters (2 units each) and lone surrogates (3 bytes each as U+FFFD).
  const mixed = '😀\ud800é\udfff'.repeat(Math.floor(max / 15));
  for (let off = 0; off < SIZE; off += 8) {
    ctl[PUB] = ctl[CON] = off;
    const r = new RingReader(sab); // reads on from the consumed position just set
    for (const line of ['a'.repeat(max), euro, mixed]) {
      const bound = Math.min(line.length * 3, max);
      assert.ok(Buffer.byteLength(line) <= bound);
      assert.equal(w.publish(line, bound, off, off), true, `offset ${off}`);
      const e = r.next();
      assert.ok(e);
      assert.ok(r.text(e).equals(Buffer.from(line, 'utf8')), `offset ${off}`);
      r.consume();
      assert.equal(r.next(), null);
    }
  }
  assert.equal(euro.length * 3, max - (max % 3));
});
