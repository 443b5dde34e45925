/**
 * The audit writer thread: chains and appends the records the event loop publishes in the
 * hand-over ring (ring.ts; writer.ts publishes each record as it is written, serialised but not
 * chained), with synchronous file calls (append-file.ts). It adds each record's seq and prev and
 * computes its hash (line.ts chainInto) in ring order, which is the order of write() calls, so the
 * event loop hashes nothing. While records flow it wakes itself every WRITE_PERIOD_MS and appends what was
 * published meanwhile with one write; after a period with none it sleeps on the ring's futex
 * until a publish wakes it. It runs no event loop of its own: a round costs it one wake-up, the
 * file check and the write. Nothing goes
 * back per batch: the last seq it is done with (written, or lost and reported) is stored in a
 * shared counter; only problems, a recovery, freed room and flush replies are messages. A thread
 * started again after one died (`resume`) reads on from where the dead one had got to in the ring
 * and first finds the last record already in the file, so no batch is lost or written twice.
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { AppendFile } from './append-file.js';
import { doneWord, HeadSlots } from './chain-head.js';
import { chainInto, chainLineBytes } from './line.js';
import { CLOSE, FLUSH, RingReader } from './ring.js';

export interface ThreadInit {
  path: string;
  maxBytes: number;
  maxFiles: number;
  fsync: boolean;
  /**
   * DONE_BYTES (chain-head.ts): the highest seq this thread (or the one before it) is done with,
   * and the chain's head with the seq it belongs to.
   */
  done: SharedArrayBuffer;
  /** The hand-over ring (ring.ts), the same for every thread of one log. */
  ring: SharedArrayBuffer;
  /** Started again after a thread died: skip records already in the file. */
  resume: boolean;
}

/** Thread → event loop. */
export type FromThread =
  | { t: 'ready' }
  | { t: 'fatal'; message: string; code: string | undefined }
  | { t: 'problem'; message: string; reopened: boolean }
  | { t: 'failed'; message: string; code: string | undefined; first: number; last: number }
  | { t: 'recover' }
  /** Room freed in the ring after the event loop asked (ring.ts WANT_SPACE). */
  | { t: 'space' }
  /** Everything published before flush `id` was asked for is done. */
  | { t: 'flushed'; id: number };

export { DONE_BYTES } from './chain-head.js';
const SEQ_RE = /^\{"seq":(\d+),/;
const HASH_RE = /,"hash":"([0-9a-f]{64})"\}\n$/;
/**
 * Rounds in a row that find nothing before the thread sleeps until woken (ring.ts idle()): one
 * period was too short under load (a publish after an event-loop stall of 5 ms woke the thread,
 * ~1 in 50 records in `bench/peers-profile.ts https`; docs/benchmarks.md, "Seventh pass: audit
 * record"). A record written meanwhile still waits at most one period.
 */
const IDLE_ROUNDS = 10;
/** Bytes gathered for one append at most (more entries go in the next append of the round). */
const STAGE_LIMIT = 1024 * 1024;

/**
 * The seq and hash of the last complete line of `path` (or of path.1 when a rotation left `path`
 * empty), seq 0 when there is none. An incomplete last line can only be an append the dead thread
 * did not finish: it is cut off, so the record is written again whole.
 */
function lastOnDisk(path: string): { seq: number; hash: string | null } {
  for (const file of [path, `${path}.1`]) {
    let fd: number;
    try {
      fd = openSync(file, 'r+');
    } catch {
      continue;
    }
    try {
      const size = fstatSync(fd).size;
      for (let want = 64 * 1024; size > 0; want *= 4) {
        const len = Math.min(want, size);
        const buf = Buffer.alloc(len);
        readSync(fd, buf, 0, len, size - len);
        const end = buf.lastIndexOf(0x0a) + 1; // just past the last complete line; 0: none in view
        if (end === 0 && len < size) continue;
        if (end < len) ftruncateSync(fd, size - len + end);
        if (end === 0) break;
        const start = end >= 2 ? buf.lastIndexOf(0x0a, end - 2) + 1 : 0;
        if (start === 0 && len < size) continue;
        const line = buf.subarray(start, end).toString('latin1');
        const hash = HASH_RE.exec(line)?.[1];
        return hash === undefined ? { seq: 0, hash: null } : { seq: Number(SEQ_RE.exec(line)?.[1] ?? 0), hash };
      }
    } finally {
      closeSync(fd);
    }
  }
  return { seq: 0, hash: null };
}

/** `text` without its first `n` lines. */
function dropLines(text: Buffer, n: number): Buffer {
  let at = 0;
  for (let i = 0; i < n && at < text.length; i++) at = text.indexOf(0x0a, at) + 1 || text.length;
  return text.subarray(at);
}

function run(init: ThreadInit, port: NonNullable<typeof parentPort>): void {
  const post = (m: FromThread): void => port.postMessage(m);
  const done = doneWord(init.done);
  const head = new HeadSlots(init.done);
  // A restarted thread reports a recovery after its first good batch (the death was a failure).
  let failing = init.resume;
  let file: AppendFile;
  let skipThrough = 0;
  // The hash of the last record chained (seq skipThrough or, once records flow, the last one read).
  let prev = '';
  try {
    const h = head.read();
    prev = h.hash;
    if (init.resume) {
      // The head is stored before `done`: a thread that died between the two had finished the
      // records up to the head's seq (written, or reported lost: not to be chained again).
      skipThrough = Math.max(Number(Atomics.load(done, 0)), h.seq);
      // Appended by the dead thread but not yet counted as done: the file has the hash to go on from.
      const disk = lastOnDisk(init.path);
      if (disk.seq > skipThrough && disk.hash !== null) {
        skipThrough = disk.seq;
        prev = disk.hash;
      }
    }
    file = new AppendFile({
      ...init,
      onProblem: (message, reopened) => {
        if (reopened) failing = true;
        post({ t: 'problem', message, reopened });
      },
    });
  } catch (e) {
    post({ t: 'fatal', message: e instanceof Error ? e.message : String(e), code: (e as NodeJS.ErrnoException).code });
    port.close();
    return;
  }
  post({ t: 'ready' });
  const ring = new RingReader(init.ring);
  // The published entries of one round are chained here and appended with one write: the event
  // loop publishes each record as its own entry (writer.ts).
  let stage = Buffer.allocUnsafe(64 * 1024);

  /** Chains the bodies of `text` (each ending in "\n"), the first at `seq`, into the stage at `at`; the end. */
  function chain(text: Buffer, seq: number, at: number): number {
    for (let from = 0; from < text.length; seq++) {
      const nl = text.indexOf(0x0a, from);
      const body = text.subarray(from, nl);
      const need = at + chainLineBytes(body.length, seq);
      if (need > stage.length) {
        const bigger = Buffer.allocUnsafe(Math.max(need, 2 * stage.length));
        stage.copy(bigger, 0, 0, at);
        stage = bigger;
      }
      const line = chainInto(stage, at, body, seq, prev);
      prev = line.hash;
      at = line.end;
      from = nl + 1;
    }
    return at;
  }

  /** Appends what is published, in rounds of up to STAGE_LIMIT bytes; the number of entries taken. */
  function writeOut(): number {
    let taken = 0;
    for (;;) {
      let staged = 0;
      let first = 0;
      let last = -1;
      for (let e = ring.next(); e !== null; e = ring.next()) {
        taken += 1;
        last = e.last;
        if (e.last <= skipThrough) continue;
        if (staged === 0) first = Math.max(e.first, skipThrough + 1);
        // An entry with no text is a record the event loop could not hand over (reported lost
        // there): it takes no part in the chain, the next record's prev is the last one's hash.
        if (e.first > skipThrough) staged = chain(ring.text(e), e.first, staged);
        else staged = chain(dropLines(ring.text(e), skipThrough - e.first + 1), skipThrough + 1, staged);
        if (staged >= STAGE_LIMIT) break;
      }
      if (last < 0) return taken;
      if (staged > 0) {
        try {
          file.append(stage.subarray(0, staged));
          if (failing) {
            failing = false;
            post({ t: 'recover' });
          }
        } catch (err) {
          failing = true;
          post({ t: 'failed', message: err instanceof Error ? err.message : String(err), code: (err as NodeJS.ErrnoException).code, first, last });
        }
      }
      // Written (or reported lost) before the room is freed: a thread that dies before this line
      // leaves these entries in the ring for the next one, which skips what reached the file. The
      // head goes first, with its seq (chain-head.ts).
      head.store(last, prev);
      Atomics.store(done, 0, BigInt(last));
      if (ring.consume()) post({ t: 'space' });
    }
  }

  let flushed = 0;
  let empty = 0;
  for (;;) {
    // Read before the ring: whatever was published before the flush or close was asked for is
    // written in this round, before the answer.
    const epoch = ring.epoch();
    const flushAsked = ring.load(FLUSH);
    const closing = ring.load(CLOSE) === 1;
    const taken = writeOut();
    if (flushAsked !== flushed) {
      flushed = flushAsked;
      post({ t: 'flushed', id: flushAsked });
    }
    if (closing) {
      file.closeFd();
      return port.close();
    }
    // Records flowed this round: come back for the next ones in one period, unasked. After
    // IDLE_ROUNDS rounds in a row that found none, sleep until a publish wakes us: a busy proxy's
    // event loop stalls for a period now and then (GC, a descheduled core), and the publish after
    // such a stall would otherwise pay a wake-up.
    if (taken > 0) empty = 0;
    else empty += 1;
    if (empty < IDLE_ROUNDS) ring.pause(epoch);
    else {
      empty = 0;
      ring.idle(epoch);
    }
  }
}

if (parentPort !== null) run(workerData as ThreadInit, parentPort);
