/**
 * The scan worker (offload.ts): one ScrubEngine per off-thread stream, built from the same
 * scrubber definition the event loop compiled (known secrets with their replacements, the pattern
 * specs compiled again here, the handle check under the same key). Each write, end or soft flush
 * is answered with the engine's output (copied into a buffer of its own and transferred: the
 * engine's output may be a view into its own buffer), the redactions it reported, and its held
 * bytes. An engine that throws fails its stream only. Secret values stay in the process (a
 * worker thread is the same process) and are never logged.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { compilePatterns, type CompiledPattern } from './patterns.js';
import { compileScrubber, type Redaction, type Scrubber } from './scrubber.js';
import type { ScrubEngine } from './engine.js';
import { handleCheck } from '../secrets/handles.js';
import type { KeyRing } from '../secrets/keys.js';
import { IdLru, MAX_WORKER_PATTERN_SETS, MAX_WORKER_SCRUBBERS, type FromWorker, type ToWorker } from './offload-protocol.js';

if (!parentPort) throw new Error('offload-thread.ts runs as a worker thread');
const port = parentPort;

const scrubbers = new IdLru<Scrubber>(MAX_WORKER_SCRUBBERS);
const patternSets = new IdLru<CompiledPattern[]>(MAX_WORKER_PATTERN_SETS);
const engines = new Map<number, ScrubEngine>();
/** One key ring per handle key, so openHandle's cache (per ring) is kept between scrubbers. */
const rings = new Map<string, KeyRing>();
/** The redactions of the call being answered. */
let reds: Redaction[] = [];
const report = (r: Redaction): void => void reds.push(r);

const exitAfter = (workerData as { exitAfter?: number } | null)?.exitAfter;
let given = 0;

function ringFor(key: Uint8Array): KeyRing {
  const handleKey = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  const hex = handleKey.toString('hex');
  let ring = rings.get(hex);
  if (!ring) rings.set(hex, (ring = { handleKey } as KeyRing));
  return ring;
}

function open(m: Extract<ToWorker, { t: 'open' }>): void {
  // The same operations, in the same order, as the event loop's (offload-protocol.ts).
  let patterns: CompiledPattern[] | undefined;
  if (m.specs) patternSets.add(m.patterns, (patterns = compilePatterns(m.specs)));
  else patterns = patternSets.use(m.patterns);
  let s: Scrubber | undefined;
  if (m.secrets) {
    if (!patterns) throw new Error('the scan worker lacks the pattern set of a new scrubber');
    s = compileScrubber({ secrets: m.secrets, patterns, ...(m.handleKey ? { isHandle: handleCheck(ringFor(m.handleKey)) } : {}) });
    scrubbers.add(m.scrubber, s);
  } else s = scrubbers.use(m.scrubber);
  if (!s) throw new Error('the scan worker lacks a scrubber');
  engines.set(m.s, s.createEngine(m.maxHold, report));
}

function answer(s: number, out: Buffer, engine: ScrubEngine): void {
  let ab: ArrayBuffer | null = null;
  if (out.length > 0) {
    const copy = Buffer.allocUnsafeSlow(out.length);
    out.copy(copy);
    ab = copy.buffer;
  }
  const m: FromWorker = { t: 'out', s, out: ab, red: reds.length > 0 ? reds : null, held: engine.held, peak: engine.peakHeld };
  reds = [];
  port.postMessage(m, ab ? [ab] : undefined);
}

function fail(s: number, e: unknown): void {
  engines.delete(s);
  reds = [];
  // The message names what failed; it holds no input (engine and matcher errors never quote it).
  port.postMessage({ t: 'fail', s, message: e instanceof Error ? e.message : 'the scan failed' } satisfies FromWorker);
}

port.on('message', (m: ToWorker) => {
  if (m.t === 'close') {
    engines.delete(m.s);
    return;
  }
  try {
    if (m.t === 'open') return open(m);
    const engine = engines.get(m.s);
    if (!engine) throw new Error('the scan worker has no engine for this stream');
    if (m.t === 'soft') return answer(m.s, engine.flushSoft(), engine);
    const buf = Buffer.from(m.buf);
    given += buf.length;
    if (exitAfter !== undefined && given > exitAfter) process.exit(70); // test hook (offload.ts)
    if (m.t === 'write') return answer(m.s, engine.write(buf), engine);
    engines.delete(m.s);
    answer(m.s, engine.end(buf), engine);
  } catch (e) {
    fail(m.s, e);
  }
});
