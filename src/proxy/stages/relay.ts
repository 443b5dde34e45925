/**
 * The response head, relayed as soon as the upstream's body starts — not when the scrubber
 * first lets bytes through. Node sends a head written with writeHead() only together with the
 * first body bytes, and the scrubber may hold those back (a token could be forming), so a slow
 * body (a byte a second, SSE) used to leave the client with nothing at all, headers included.
 *
 * The head opens when the first body chunk arrives from the upstream, after `quietMs` without one
 * (a long poll or an event stream that starts quiet), or at the end of the body, whichever comes
 * first. Until then nothing has reached the client, so an upstream that fails right after its
 * head (closes, resets) can still be answered with a 502 and its code instead of an empty reply.
 * The sink writes into the response without being the response, so a failed pipeline does not
 * destroy it before that answer is written (forward.ts decides).
 */
import type { ClientResponse } from './exchange.js';
import { Readable, Transform, Writable } from 'node:stream';

export class HeadGate {
  private opened = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly res: ClientResponse,
    private readonly status: number,
    private readonly headers: Array<[string, string]>,
    private readonly onOpen: () => void,
    quietMs: number,
  ) {
    this.timer = setTimeout(() => this.open(), quietMs);
    this.timer.unref();
  }

  /** True once the head was handed to the client connection. */
  get sent(): boolean {
    return this.opened;
  }

  open(): void {
    this.stop();
    if (this.opened || this.res.destroyed) return;
    this.opened = true;
    this.res.writeHead(this.status, this.headers.flat());
    this.res.flushHeaders();
    this.onOpen();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** First in the chain: the first upstream body chunk opens the head. */
  tap(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        this.open();
        cb(null, chunk);
      },
    });
  }

  /** Last in the chain: writes into the response with its backpressure, and ends it. */
  sink(): Writable {
    const res = this.res;
    const sink = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        this.open();
        if (res.write(chunk)) cb();
        else res.once('drain', () => cb());
      },
      final: (cb) => {
        this.open();
        res.end(() => cb());
      },
    });
    // A response that closes unfinished never drains nor finishes (a pipelined one whose client
    // left before its turn, listen/connection.ts): the body must fail, not wait forever.
    res.once('close', () => {
      if (!res.writableFinished) sink.destroy(new Error('the response closed before it finished'));
    });
    return sink;
  }
}

/** What prefetch found: the whole body, a failure before its end, or a body still arriving. */
export type Prefetched = { whole: Buffer } | { failed: Error } | { rest: Readable };

/**
 * The whole body when its source already pushed all of it, or null. undici parses a small
 * response (head, body, end) in one go before the request's promise continues, so this is the
 * common case: no timer, no listeners and no replay stream per response (docs/benchmarks.md,
 * "Hot path"). `_readableState.ended` is Node's own flag for "push(null) happened".
 */
function alreadyWhole(body: Readable): Buffer | null {
  const st = (body as Readable & { _readableState?: { ended?: boolean; errored?: unknown } })._readableState;
  if (st?.ended !== true || st.errored || body.destroyed || body.readableFlowing === true) return null;
  // Paused with the end pushed: read() hands over every buffered byte at once.
  const c = body.read() as Buffer | null;
  return c ?? Buffer.alloc(0);
}

/** What prefetch would resolve with at once (the body is already whole), without its promise; else null. */
export function wholeNow(body: Readable): { whole: Buffer } | null {
  const now = alreadyWhole(body);
  return now ? { whole: now } : null;
}

/**
 * For the small-body path (small-body.ts), which sends the head only together with the whole
 * body: waits up to `quietMs` for the body to end. Ended → `whole`, the bytes that arrived. Not yet
 * (a slow body) → `rest`, a stream that replays what arrived and continues with the body, for the
 * streaming path and its HeadGate. A body that fails within `quietMs` is `failed` (small-body.ts
 * answers with the error: a 502).
 */
export function prefetch(body: Readable, quietMs: number): Promise<Prefetched> {
  const now = wholeNow(body);
  if (now) return Promise.resolve(now);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (ended: boolean, err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      body.off('data', onData).off('end', onEnd).off('error', onError);
      if (err) {
        // Failed before the head could leave: the small-body path answers with the error.
        resolve({ failed: err });
        return;
      }
      if (ended) {
        resolve({ whole: Buffer.concat(chunks) });
        return;
      }
      body.pause();
      async function* replay(): AsyncGenerator<Buffer> {
        yield* chunks;
        for await (const c of body) yield c as Buffer;
      }
      resolve({ rest: Readable.from(replay(), { objectMode: false }) });
    };
    const onData = (c: Buffer): void => void chunks.push(c);
    const onEnd = (): void => finish(true);
    const onError = (e: Error): void => finish(false, e);
    const timer = setTimeout(() => finish(false), quietMs);
    body.on('data', onData).once('end', onEnd).once('error', onError);
  });
}
