/**
 * Long timeouts on one shared clock. Turret arms several timeouts per request that almost never
 * fire (request_timeout, 15 min by default; upstream_queue_timeout, 30 s; the keep-alive wait
 * after a response, 31 s), and a native timer costs a `Timeout` object, a clock read and a timer
 * list insertion to arm and a list removal to clear: ~1 µs and ~250 B per timeout, paid on every
 * request for nothing (docs/benchmarks.md "Hot path → Twelfth pass"). undici made the same trade
 * (its lib/util/timers.js): timeouts of a second or more are checked by one ticking timer, shorter
 * ones stay native.
 *
 * Here a timeout of `COARSE_MIN_MS` or more is an entry in one array (arming appends it, clearing
 * swaps the last entry into its slot), and one unref'd native timer ticks every `TICK_MS` while
 * any entry is armed and fires those whose time has come, earliest first. A coarse timeout never
 * fires early and fires at most `TICK_MS` late (plus whatever holds the event loop, as a native
 * timer); a shorter one is a native timer, exact as before. docs/operations.md "Limits" says so.
 *
 * A `CoarseTimeout` is made once and re-armed (`arm`) as often as needed: a connection's
 * keep-alive wait costs no allocation per response.
 */

/** Timeouts at least this long run on the shared clock; shorter ones are native timers. */
export const COARSE_MIN_MS = 1000;
/** How often the shared clock checks its timeouts: the most a coarse timeout fires late. */
export const TICK_MS = 500;

/** What the shared clock sees of a timeout. */
interface Entry {
  _at: number;
  _slot: number;
  fire(): void;
}

/** The entries armed on the shared clock, in no order. */
const armed: Entry[] = [];
/** The one native timer of the shared clock (made once, refreshed while entries are armed). */
let ticker: NodeJS.Timeout | null = null;
let ticking = false;

/** A monotonic clock in milliseconds. */
function now(): number {
  return performance.now();
}

export class CoarseTimeout<A> {
  /** @internal When it fires (now()'s clock), or -1 while not armed. */
  _at = -1;
  /** @internal Its index in `armed`, or -1 (a native timer, or not armed). */
  _slot = -1;
  /** The native timer of a short timeout. */
  private native: NodeJS.Timeout | null = null;

  constructor(
    private readonly fn: (arg: A) => void,
    private readonly arg: A,
  ) {}

  /** True while armed (it has neither fired nor been cleared). */
  get armed(): boolean {
    return this._at >= 0;
  }

  /** (Re)arms it to fire `ms` from now (a previous arming is replaced). */
  arm(ms: number): this {
    if (this.native !== null) {
      clearTimeout(this.native);
      this.native = null;
    }
    this._at = now() + ms;
    if (ms < COARSE_MIN_MS) {
      if (this._slot >= 0) unlist(this);
      this.native = setTimeout(fireNative, ms, this);
      this.native.unref();
      return this;
    }
    if (this._slot < 0) {
      this._slot = armed.length;
      armed.push(this);
    }
    if (!ticking) startTicking();
    return this;
  }

  /** Disarms it: it will not fire (until armed again). */
  clear(): void {
    this._at = -1;
    if (this._slot >= 0) unlist(this);
    if (this.native !== null) {
      clearTimeout(this.native);
      this.native = null;
    }
  }

  /** Fires it now: disarmed first, so `fn` may arm it again. */
  fire(): void {
    this._at = -1;
    this.native = null;
    if (this._slot >= 0) unlist(this);
    this.fn(this.arg);
  }
}

function fireNative(e: Entry): void {
  e.fire();
}

/** Takes `e` out of `armed` (the last entry takes its slot). */
function unlist(e: Entry): void {
  const i = e._slot;
  const last = armed.pop() as Entry;
  if (last !== e) {
    armed[i] = last;
    last._slot = i;
  }
  e._slot = -1;
}

function startTicking(): void {
  ticking = true;
  if (ticker === null) {
    ticker = setTimeout(tick, TICK_MS);
    ticker.unref();
  } else ticker.refresh();
}

/** One tick of the shared clock: every timeout whose time has come fires, earliest first. */
function tick(): void {
  const t = now();
  let due: Entry[] | null = null;
  for (let i = 0; i < armed.length; i++) {
    const e = armed[i] as Entry;
    if (e._at <= t) (due ??= []).push(e);
  }
  if (due !== null) {
    if (due.length > 1) due.sort(earliest);
    for (const e of due) {
      // An earlier one may have cleared or re-armed it.
      if (e._at < 0 || e._at > t) continue;
      // One that throws does not stop the others, nor the clock; its error is still uncaught,
      // as a native timer's would be.
      try {
        e.fire();
      } catch (err) {
        process.nextTick(rethrow, err);
      }
    }
  }
  if (armed.length > 0) (ticker as NodeJS.Timeout).refresh();
  else ticking = false;
}

function earliest(a: Entry, b: Entry): number {
  return a._at - b._at;
}

function rethrow(err: unknown): never {
  throw err;
}

/** How many coarse timeouts are armed on the shared clock (tests). */
export function armedCount(): number {
  return armed.length;
}
