/**
 * The file log's shared progress words (writer.ts, writer-thread.ts), DONE_BYTES of shared memory:
 *
 *   0   BigInt64  done: the highest seq the writer thread (or the one before it) is done with,
 *                 written or lost and reported; the event loop reads it to let batches go
 *   8   Int32     which of the two head slots is the current one
 *   16  slot 0    Float64 seq, then the 32 hash bytes of the chain head after that seq
 *   56  slot 1    the same
 *
 * The head is the hash the record after `seq` takes as its prev (a record lost on the way takes no
 * part in the chain, so it can be the hash of a record before `seq`). A thread started after one
 * died goes on from it. It is kept with its own seq, in two slots: the thread writes the slot that
 * is not current and then flips the index with one atomic store, so a thread that dies at any point
 * leaves a head that belongs to the seq stored beside it. A head stored alone, ahead of `done`,
 * was taken by a restarted thread for the head at `done`: after an append that failed (the records
 * reported lost, so not in the file either), it chained those records again after the hash of the
 * last of them (test/unit/audit-chain-head-death.test.ts).
 */

export const DONE_BYTES = 96;
const ACTIVE = 8;
const SLOT = 16;
const SLOT_BYTES = 40;

/** The chain head: the hash the record after `seq` takes as its prev. */
export interface Head {
  seq: number;
  hash: string;
}

function slot(sab: SharedArrayBuffer, k: number): { seq: Float64Array; hash: Buffer } {
  const at = SLOT + k * SLOT_BYTES;
  return { seq: new Float64Array(sab, at, 1), hash: Buffer.from(sab, at + 8, 32) };
}

/** The `done` word (BigInt64, shared with the event loop). */
export function doneWord(sab: SharedArrayBuffer): BigInt64Array {
  return new BigInt64Array(sab, 0, 1);
}

/** Sets up the words of a log whose chain stands at `head` (nothing handed over yet). */
export function initProgress(sab: SharedArrayBuffer, head: Head): void {
  Atomics.store(doneWord(sab), 0, BigInt(head.seq));
  const s = slot(sab, 0);
  s.seq[0] = head.seq;
  s.hash.write(head.hash, 'hex');
  Atomics.store(new Int32Array(sab, ACTIVE, 1), 0, 0);
}

/** The thread's side: reads the current head, stores new ones. */
export class HeadSlots {
  private readonly active: Int32Array;
  private readonly slots: ReturnType<typeof slot>[];

  constructor(sab: SharedArrayBuffer) {
    this.active = new Int32Array(sab, ACTIVE, 1);
    this.slots = [slot(sab, 0), slot(sab, 1)];
  }

  read(): Head {
    const s = this.slots[Atomics.load(this.active, 0) & 1]!;
    return { seq: s.seq[0]!, hash: s.hash.toString('hex') };
  }

  /** Writes the slot that is not current, then makes it current (the atomic store publishes both). */
  store(seq: number, hash: string): void {
    const k = (Atomics.load(this.active, 0) & 1) ^ 1;
    const s = this.slots[k]!;
    s.seq[0] = seq;
    s.hash.write(hash, 'hex');
    Atomics.store(this.active, 0, k);
  }
}
