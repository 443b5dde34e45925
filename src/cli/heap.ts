/**
 * The proxy's old-generation growth factor, set when `turret start` begins.
 *
 * Why: a relay allocates a lot of short-lived buffers (every TLS record read is a new
 * ArrayBuffer; the scrubber's batches add more), and V8 counts external memory allocated since
 * the last full collection against the old generation's limit. Turret's old generation is small
 * (~20 MB), and after a full collection V8 sets the next limit from its recent GC speed: at a
 * factor of ~1.1–1.5 that leaves ~8 MB of headroom, less than the 32 MB of young buffers V8 lets
 * pile up between scavenges, so every few MB relayed started another full collection (4–40
 * mark-compacts per 400 MB of scrubbed JSON between runs of the same build; the scrubbed/
 * unscrubbed throughput ratio swung 0.57–0.78 with them). A fixed factor of 3 keeps the headroom
 * above that: the storms go away (2 mark-compacts, the start-up ones, per 400 MB), at the cost of
 * the old generation growing to 3× its live size (a few tens of MB here) before it is collected.
 * V8 reads this flag each time it sets a limit, so setting it at run time takes effect (measured:
 * docs/benchmarks.md, "Scrubber throughput → Fifth round"). An operator's own
 * `--heap-growing-percent` on node's command line wins (node refuses it in NODE_OPTIONS).
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 200;

export function tuneHeapGrowth(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.some((a) => /heap[-_]growing[-_]percent/.test(a))) return false;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}
