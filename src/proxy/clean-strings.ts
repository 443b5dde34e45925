/**
 * Strings a scrubber already found nothing in. Most strings scrubbed per request repeat from one
 * request to the next: the audit record's keys and most of its values (event, outcome, agent,
 * method, host, path, reason), and the names and many values of response headers. Scrubbing each
 * one (a Buffer, a scan engine, the keyword index) was ~12% of a small request's CPU in the audit
 * record alone (docs/benchmarks.md, "Hot path").
 *
 * A scrubber is a pure function of its input string, so a string it left unchanged once is left
 * unchanged again by the same scrubber: only such clean strings are kept, never one that had a
 * find (nothing secret is held here longer than a request holds it). The memo belongs to one
 * scrubber object (a WeakMap): a scrubber built for other secret values (rotation, reload) or
 * other replacements starts empty, so a newly configured secret is looked for in every string.
 *
 * Not kept: strings that are not printable ASCII, strings that contain `trt_` (whether a token pattern fires inside a handle-shaped run
 * depends on whether that handle opens, which the scrubber asks each time), and long strings
 * (unique paths and bodies would only churn the set). The set is bounded and cleared when full.
 */

const MAX_ENTRIES = 4096;
const MAX_LENGTH = 256;

// ASCII only: its bytes are the same whether a caller scans it as UTF-8 (scrubString) or as
// latin1 (outbound.ts findSecret), so one memo per scrubber serves both.
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

const memos = new WeakMap<object, Set<string>>();

function memoOf(owner: object): Set<string> {
  let m = memos.get(owner);
  if (!m) {
    m = new Set();
    memos.set(owner, m);
  }
  return m;
}

/** True when `owner` (a scrubber) already found nothing in `text`. */
export function knownClean(owner: object, text: string): boolean {
  return memos.get(owner)?.has(text) === true;
}

/**
 * Remember that `owner` found nothing in `text` (ignored for strings the memo does not keep).
 * `handles`: the scrubber may treat a handle-shaped run specially (token patterns and a handle
 * check), so a string with `trt_` is not kept; false for a scrubber of known values only (the
 * outbound detector), which is a pure function of the text however it is spelled.
 */
export function noteClean(owner: object, text: string, handles = true): void {
  if (text.length > MAX_LENGTH || (handles && text.includes('trt_')) || !PRINTABLE_ASCII.test(text)) return;
  const m = memoOf(owner);
  if (m.size >= MAX_ENTRIES) m.clear();
  m.add(text);
}

/**
 * Header lines a detector found nothing in, kept by name, then value: `${name}: ${value}` is what
 * was checked (outbound.ts), but a line already known clean is found without building and hashing
 * that string. Each (name, value) pair stands for exactly one line, so two pairs that make the
 * same line (`a: b` + `c`, `a` + `b: c`) are kept apart and each only as clean as its own line.
 * Bounded like the strings: MAX_ENTRIES values over all names, cleared when full; the same limits
 * on what is kept (the whole line at most MAX_LENGTH, printable ASCII).
 */
interface PairMemo {
  names: Map<string, Set<string>>;
  size: number;
}

const pairMemos = new WeakMap<object, PairMemo>();

/** True when `owner` already found nothing in the line `${name}: ${value}`. */
export function knownCleanPair(owner: object, name: string, value: string): boolean {
  return pairMemos.get(owner)?.names.get(name)?.has(value) === true;
}

/** Remember that `owner` found nothing in the line `${name}: ${value}` (handles as a plain string: see noteClean). */
export function noteCleanPair(owner: object, name: string, value: string): void {
  if (name.length + value.length + 2 > MAX_LENGTH || !PRINTABLE_ASCII.test(name) || !PRINTABLE_ASCII.test(value)) return;
  let m = pairMemos.get(owner);
  if (!m) {
    m = { names: new Map(), size: 0 };
    pairMemos.set(owner, m);
  }
  if (m.size >= MAX_ENTRIES) {
    m.names.clear();
    m.size = 0;
  }
  let values = m.names.get(name);
  if (!values) {
    values = new Set();
    m.names.set(name, values);
  }
  if (values.has(value)) return;
  values.add(value);
  m.size++;
}

/** The number of pairs `owner` keeps (for tests of the bound). */
export function cleanPairCount(owner: object): number {
  return pairMemos.get(owner)?.size ?? 0;
}

/** `scrub(text)`, skipped for a string `owner` already left unchanged. */
export function scrubUnlessClean(owner: object, text: string, scrub: (t: string) => string): string {
  if (knownClean(owner, text)) return text;
  const out = scrub(text);
  if (out === text) noteClean(owner, text);
  return out;
}
