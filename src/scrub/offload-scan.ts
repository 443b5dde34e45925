/**
 * The scan worker's work (offload-thread.ts runs it on the worker thread; offload.ts is the event
 * loop's side): one ScrubEngine per off-thread stream, built from the same scrubber definition the
 * event loop compiled (known secrets with their replacements, the pattern specs compiled again
 * here, the handle check under the same key). Each write, end or soft flush is answered with the
 * engine's output (copied into a buffer of its own and transferred: the engine's output may be a
 * view into its own buffer), the redactions it reported, and its held bytes. An engine that
 * throws fails its stream only. Secret values stay in the process (a worker thread is the same
 * process) and are never logged.
 */
import { compilePatterns, type CompiledPattern } from './patterns.js';
import { compileScrubber, type Redaction, type Scrubber } from './scrubber.js';
import type { ScrubEngine } from './engine.js';
import { handleCheck } from '../secrets/handles.js';
import type { KeyRing } from '../secrets/keys.js';
import { IdLru, MAX_WORKER_PATTERN_SETS, MAX_WORKER_SCRUBBERS, type FromWorker, type ToWorker } from './offload-protocol.js';

export type Post = (m: FromWorker, transfer?: ArrayBuffer[]) => void;

export class Scanner {
  private readonly scrubbers = new IdLru<Scrubber>(MAX_WORKER_SCRUBBERS);
  private readonly patternSets = new IdLru<CompiledPattern[]>(MAX_WORKER_PATTERN_SETS);
  private readonly engines = new Map<number, ScrubEngine>();
  /** One key ring per handle key, so openHandle's cache (per ring) is kept between scrubbers. */
  private readonly rings = new Map<string, KeyRing>();
  /** The redactions of the call being answered. */
  private reds: Redaction[] = [];
  private readonly report = (r: Redaction): void => void this.reds.push(r);
  private given = 0;

  constructor(
    private readonly post: Post,
    /** Test hook (offload.ts): called with the bytes given so far, before each write or end. */
    private readonly onGiven?: (bytes: number) => void,
  ) {}

  handle(m: ToWorker): void {
    if (m.t === 'close') {
      this.engines.delete(m.s);
      return;
    }
    try {
      if (m.t === 'open') return this.open(m);
      const engine = this.engines.get(m.s);
      if (!engine) throw new Error('the scan worker has no engine for this stream');
      if (m.t === 'soft') return this.answer(m.s, engine.flushSoft(), engine);
      const buf = Buffer.from(m.buf);
      this.given += buf.length;
      this.onGiven?.(this.given);
      if (m.t === 'write') return this.answer(m.s, engine.write(buf), engine);
      this.engines.delete(m.s);
      this.answer(m.s, engine.end(buf), engine);
    } catch (e) {
      this.engines.delete(m.s);
      this.reds = [];
      // The message names what failed; it holds no input (engine and matcher errors never quote it).
      this.post({ t: 'fail', s: m.s, message: e instanceof Error ? e.message : 'the scan failed' });
    }
  }

  private ringFor(key: Uint8Array): KeyRing {
    const handleKey = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    const hex = handleKey.toString('hex');
    let ring = this.rings.get(hex);
    if (!ring) this.rings.set(hex, (ring = { handleKey } as KeyRing));
    return ring;
  }

  private open(m: Extract<ToWorker, { t: 'open' }>): void {
    // The same operations, in the same order, as the event loop's (offload-protocol.ts).
    let patterns: CompiledPattern[] | undefined;
    if (m.specs) this.patternSets.add(m.patterns, (patterns = compilePatterns(m.specs)));
    else patterns = this.patternSets.use(m.patterns);
    let s: Scrubber | undefined;
    if (m.secrets) {
      if (!patterns) throw new Error('the scan worker lacks the pattern set of a new scrubber');
      s = compileScrubber({ secrets: m.secrets, patterns, ...(m.handleKey ? { isHandle: handleCheck(this.ringFor(m.handleKey)) } : {}) });
      this.scrubbers.add(m.scrubber, s);
    } else s = this.scrubbers.use(m.scrubber);
    if (!s) throw new Error('the scan worker lacks a scrubber');
    this.engines.set(m.s, s.createEngine(m.maxHold, this.report));
  }

  private answer(s: number, out: Buffer, engine: ScrubEngine): void {
    let ab: ArrayBuffer | null = null;
    if (out.length > 0) {
      const copy = Buffer.allocUnsafeSlow(out.length);
      out.copy(copy);
      ab = copy.buffer;
    }
    const m: FromWorker = { t: 'out', s, out: ab, red: this.reds.length > 0 ? this.reds : null, held: engine.held, peak: engine.peakHeld };
    this.reds = [];
    this.post(m, ab ? [ab] : undefined);
  }
}
