/**
 * Fast path for one shape of pattern: an isolated run of exactly N bytes of one character class,
 *
 *     (?:[^X]|\A)([X]{N})(?:[^X]|\z)
 *
 * (the AWS secret-access-key shape: 40 base64 characters with no base64 neighbour). It has no
 * literal to prefilter on, so as a regex it ran on every byte and was half the scrubber's time;
 * as a byte loop over a class table it costs about as much as a memchr. Semantics are the
 * regex's, except that two runs separated by one byte are both found (the regex consumed the
 * separator with the first match and missed the second).
 */

export interface RunSpec {
  /** 1 for bytes in the class. */
  table: Uint8Array;
  length: number;
}

const SHAPE = /^\(\?:\[\^([^\]\\]+)\]\|\\A\)\(\[([^\]\\]+)\]\{(\d+)\}\)\(\?:\[\^([^\]\\]+)\]\|\\z\)$/;

/** The run spec when `source` (without flags) has exactly the shape above, else undefined. */
export function runSpecOf(source: string, flags: string): RunSpec | undefined {
  if (flags !== '') return undefined;
  const m = SHAPE.exec(source);
  if (!m || m[1] !== m[2] || m[2] !== m[4]) return undefined;
  const cls = m[2] ?? '';
  const length = Number(m[3]);
  if (!(length >= 1 && length <= 4096)) return undefined;
  const table = new Uint8Array(256);
  for (let i = 0; i < cls.length; i++) {
    const a = cls.charCodeAt(i);
    if (a > 0x7e || a < 0x20) return undefined;
    if (cls[i + 1] === '-' && i + 2 < cls.length) {
      const b = cls.charCodeAt(i + 2);
      if (b < a || b > 0x7e) return undefined;
      for (let c = a; c <= b; c++) table[c] = 1;
      i += 2;
    } else {
      if (cls[i] === '^' && i === 0) return undefined;
      table[a] = 1;
    }
  }
  return { table, length };
}

/** Calls `found(start, end)` for every run of exactly `length` class bytes starting at ≥ from
 * whose neighbours (if any) are outside the class. Bytes before `from` count as neighbours.
 * Skips like Boyer-Moore: a run of N must cover position i + N − 1, so a non-class byte there
 * moves the search N bytes on; most text is inspected at a few bytes per N. */
export function findRuns(spec: RunSpec, buf: Buffer, from: number, found: (start: number, end: number) => void, to = buf.length): void {
  const t = spec.table;
  // `to` (default: the end) must be the buffer's end or a byte outside the class, so stopping
  // there changes nothing: the matcher passes the end of a longer run that contains this one.
  const n = to;
  const len = spec.length;
  let i = from;
  // A run that began before `from` is not ours (its start was scanned already): skip it.
  if (i > 0) while (i < n && t[buf[i] ?? 0] === 1 && t[buf[i - 1] ?? 0] === 1) i++;
  // Invariant: i === 0, or buf[i − 1] is outside the class (or i is past a skipped run).
  while (i + len <= n) {
    const j = i + len - 1;
    if (t[buf[j] ?? 0] !== 1) {
      i = j + 1;
      continue;
    }
    let k = j - 1;
    while (k >= i && t[buf[k] ?? 0] === 1) k--;
    if (k >= i) {
      i = k + 1;
      continue;
    }
    let e = j + 1;
    while (e < n && t[buf[e] ?? 0] === 1) e++;
    if (e - i === len) found(i, e);
    i = e + 1;
  }
}
