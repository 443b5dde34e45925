/**
 * `d.toISOString()`, cheaper when called many times within one second (once per audit record):
 * V8's toISOString costs ~0.4 µs here (its date cache, the calendar split), while a record's time
 * differs from the last one's in its milliseconds only, nearly always. The first call in each
 * second formats the date in full and keeps everything before the milliseconds; later calls in
 * that second add the milliseconds to it (docs/benchmarks.md, "Seventh pass: audit record").
 * Same result for every date toISOString accepts (any year, before 1970 too); an invalid date
 * throws its RangeError.
 */

let second = Number.NaN;
/** toISOString of `second`, without its `sssZ`. */
let head = '';

export function isoTime(d: Date): string {
  const ms = d.getTime();
  const s = Math.floor(ms / 1000);
  if (s !== second) {
    const full = d.toISOString(); // throws for an invalid date (NaN never equals `second`)
    second = s;
    head = full.slice(0, -4);
    return full;
  }
  const r = ms - s * 1000;
  return `${head}${r < 10 ? '00' : r < 100 ? '0' : ''}${r}Z`;
}
