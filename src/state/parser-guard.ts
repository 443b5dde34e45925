/**
 * ioredis parses replies with redis-parser, which recurses once per nested array: a reply nested
 * a few thousand arrays deep (about 20 KB of `*1\r\n`, from a hostile or broken server, or anyone
 * on the path to a plain `redis://`) overflowed the stack inside the socket's 'data' handler, an
 * uncaught exception that ended the process. Any throw while parsing now becomes what a malformed
 * reply already was: a fatal protocol error for that connection (ioredis rejects its commands,
 * drops the connection and reconnects; the proxy falls back or refuses, state/redis.ts). So does a
 * reply the parser would only hold, growing: a line that never ends, a bulk string longer than
 * Redis ever sends. (test/integration/crash-redis-reply.test.ts)
 */
import { createRequire } from 'node:module';

interface RespParser {
  execute(buffer: Buffer): void;
  reset(): void;
  returnFatalError(err: Error): void;
  /** What it holds of the reply in progress: the bytes from `offset` on, or a bulk string of `bigStrSize` bytes. */
  buffer: Buffer | null;
  offset: number;
  bigStrSize: number;
}

/**
 * The longest unfinished line (a status, error, integer or length) the parser may hold. It copies
 * what it holds into each new chunk and scans it again, so a line that never ends costs the square
 * of its length: 32 MiB of `+aaa…` in 64 KiB reads blocked the event loop, every connection of
 * the proxy, for 12 s (8 MiB: 1 s). Redis's own lines are a few hundred bytes.
 */
const MAX_LINE = 1024 * 1024;
/** The largest bulk string Redis sends (its proto-max-bulk-len); a longer one is announced only to be buffered. */
const MAX_BULK = 512 * 1024 * 1024;

let guarded = false;

/** Patches the redis-parser that ioredis itself loads (idempotent). */
export function guardRedisParser(): void {
  if (guarded) return;
  guarded = true;
  const fromIoredis = createRequire(createRequire(import.meta.url).resolve('ioredis'));
  const proto = (fromIoredis('redis-parser') as { prototype: RespParser }).prototype;
  const execute = proto.execute;
  proto.execute = function (this: RespParser, buffer: Buffer): void {
    let why: string | null = null;
    try {
      execute.call(this, buffer);
      if (this.bigStrSize > MAX_BULK + 2) why = `a bulk string longer than ${MAX_BULK} bytes`;
      else if (this.bigStrSize === 0 && this.buffer && this.buffer.length - this.offset > MAX_LINE) why = `a line longer than ${MAX_LINE} bytes`;
    } catch (e) {
      why = (e as Error)?.message ?? String(e);
    }
    if (why === null) return;
    this.reset();
    this.returnFatalError(new Error(`unreadable reply (${why})`));
  };
}
