/**
 * ioredis parses replies with redis-parser, which recurses once per nested array: a reply nested
 * a few thousand arrays deep (about 20 KB of `*1\r\n`, from a hostile or broken server, or anyone
 * on the path to a plain `redis://`) overflowed the stack inside the socket's 'data' handler, an
 * uncaught exception that ended the process. Any throw while parsing now becomes what a malformed
 * reply already was: a fatal protocol error for that connection (ioredis rejects its commands,
 * drops the connection and reconnects; the proxy falls back or refuses, state/redis.ts).
 * (test/integration/crash-redis-reply.test.ts)
 */
import { createRequire } from 'node:module';

interface RespParser {
  execute(buffer: Buffer): void;
  reset(): void;
  returnFatalError(err: Error): void;
}

let guarded = false;

/** Patches the redis-parser that ioredis itself loads (idempotent). */
export function guardRedisParser(): void {
  if (guarded) return;
  guarded = true;
  const fromIoredis = createRequire(createRequire(import.meta.url).resolve('ioredis'));
  const proto = (fromIoredis('redis-parser') as { prototype: RespParser }).prototype;
  const execute = proto.execute;
  proto.execute = function (this: RespParser, buffer: Buffer): void {
    try {
      execute.call(this, buffer);
    } catch (e) {
      this.reset();
      this.returnFatalError(new Error(`unreadable reply (${(e as Error)?.message ?? String(e)})`));
    }
  };
}
