/** Streams `parts` through the transform `t` (with backpressure, as a socket would) and returns all it wrote. */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export async function streamThrough(t: NodeJS.ReadWriteStream, parts: Buffer[]): Promise<Buffer> {
  const got: Buffer[] = [];
  await pipeline(
    Readable.from(parts),
    t,
    new Writable({
      write(c: Buffer, _e, cb) {
        got.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(got);
}
