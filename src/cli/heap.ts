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

/**
 * The young generation's ceiling: each of V8's two semi-spaces may grow to this many MB (V8's
 * default on 64-bit is 16). Every intercepted request allocates ~21 KiB of short-lived objects
 * (parsed heads, the audit record, scrub state); at several thousand requests a second the
 * scavenger runs every few milliseconds with a 16 MB nursery, and objects still in flight at
 * that moment (the requests in progress) are copied, some promoted to the old generation only to
 * die there. A larger nursery scavenges less often and promotes less. Measured in the same runs
 * as squid (docs/benchmarks.md, "Hot path → Thirteenth pass → young generation").
 *
 * V8 reads this only when the isolate is created (`v8.setFlagsFromString` later leaves the
 * ceiling as it was), so it cannot be set from here like the growth factor above: it is on
 * Turret's launchers (`npm start`, the `turret` bin's shebang, Dockerfile, deploy/), and
 * `turret start --workers N` adds it to the workers it forks unless the operator's own
 * `--max-semi-space-size` is on node's command line or in NODE_OPTIONS. To choose another
 * ceiling, edit the launcher's flag (node applies NODE_OPTIONS first, so the launcher's command
 * line would win over it); `node dist/main.js start` without it runs with V8's default, and the
 * start-up summary's `max_semi_space_mb` says which one a process got.
 */
export const SEMI_SPACE_MB = 64;
export const YOUNG_GENERATION_FLAG = `--max-semi-space-size=${SEMI_SPACE_MB}`;

const SEMI_SPACE = /^--max[-_]semi[-_]space[-_]size(?:=(.*))?$/;

/**
 * The semi-space ceiling in MB this process was started with, from node's flags (`execArgv`)
 * and NODE_OPTIONS (the later wins, as in node: the command line is applied after NODE_OPTIONS),
 * or 'default' when neither sets it (V8's own, 16 MB on 64-bit).
 */
export function semiSpaceMb(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): number | 'default' {
  let found: number | 'default' = 'default';
  for (const args of [nodeOptions.split(/\s+/).filter(Boolean), execArgv]) {
    for (let i = 0; i < args.length; i++) {
      const m = SEMI_SPACE.exec(args[i] ?? '');
      if (!m) continue;
      const value = m[1] ?? args[++i] ?? '';
      const n = Number(value);
      // node itself refuses a value that is not a size; keep what V8 would have used.
      if (/^\d+$/.test(value) && n > 0) found = n;
    }
  }
  return found;
}

/** Node flags for a worker forked by `turret start --workers N`: the primary's, plus the young-generation ceiling unless the operator chose one. */
export function workerExecArgv(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env.NODE_OPTIONS ?? ''): string[] {
  const own = [...execArgv, ...nodeOptions.split(/\s+/)].some((a) => SEMI_SPACE.test(a));
  return own ? [...execArgv] : [...execArgv, YOUNG_GENERATION_FLAG];
}
