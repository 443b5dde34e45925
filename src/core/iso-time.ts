/**
 * `d.toISOString()`, cheaper when called many times within one second (once per audit record):
 * V8's toISOString costs ~0.4 µs here (its date cache, the calendar split), while a record's time
 * differs from the last one's in its milliseconds only, nearly always. The first call in each
 * second formats the date in full and keeps everything before the milliseconds; later calls in
 * that second add the milliseconds to it (docs/benchmarks.md, "Seventh pass: audit record").
 * Same result for every date toISOString accepts (any year, before 1970 too), given as a Date or
 * as its time value (Date.now()); an invalid date throws its RangeError.
 */

let second = Number.NaN;
/** toISOString of `second`, without its `sssZ`. */
let head = '';

/** `000Z` … `999Z`: the end of a time in the same second as the last, one concatenation. */
const MS_Z = Array.from({ length: 1000 }, (_, r) => `${String(r).padStart(3, '0')}Z`);

export function isoTime(d: Date | number): string {
  // A number that is not an integer is the Date it makes (whose time value drops the fraction).
  const ms = typeof d !== 'number' ? d.getTime() : Number.isSafeInteger(d) ? d : new Date(d).getTime();
  const s = Math.floor(ms / 1000);
  if (s !== second) {
    // Throws for an invalid date (NaN never equals `second`); a number is a Date's time value.
    const full = (typeof d === 'number' ? new Date(d) : d).toISOString();
    second = s;
    head = full.slice(0, -4);
    return full;
  }
  return head + MS_Z[ms - s * 1000]!;
}
