/**
 * Known secrets spelled with escapes mixed into literal characters, which no fixed list of forms
 * can enumerate (each character escaped or not, hex in either case, zero padding):
 *
 * - **escaped runs**: a run of bytes without whitespace, quotes or angle brackets that contains at
 *   least one escape — `%XX` (Python's `quote()` keeps `/` and escapes `+`; "escape only `/`"),
 *   HTML numeric references decimal or hex, zero-padded or not, with or without `;` (`&#47;`,
 *   `&#0047;`, `&#x2F;`), the named references for ASCII punctuation (`&sol;`, `&plus;`, `&amp;` …),
 *   and JSON `\uXXXX` / `\/` — is decoded one layer, and the secret's raw (any ASCII case), hex and
 *   base64 forms are searched in the decoded bytes;
 * - **wrapped base64**: base64 broken into lines (MIME's 76 columns, PEM's 64, any width ≥ 40) is
 *   joined across its line breaks and the secret's base64 forms are searched in the joined text.
 *
 * A find is reported on the original bytes it came from (an offset map), and only when it covers
 * an escape or a line break: the plain forms are the Matcher's. Every find is bounded (at most
 * MAX_ESCAPE bytes per decoded byte), which `window` reports so the stream sees it whole.
 */
import { MAX_INPUT, longRuns, type RunTables } from './long-runs-wasm.js';
import { ALL_CHECK_BITS, CHECK_CLASS } from './patterns.js';

/** Longest escape decoded: `&#x0000002f;` (zero padding up to 8 digits). */
const MAX_ESCAPE = 12;
/** A wrapped line must hold at least this many base64 characters before its break. */
export const MIN_WRAPPED_LINE = 40;
/** Upper bound on the window this finder asks for (a long secret's escaped span). */
const MAX_WINDOW = 16 * 1024;

const NAMED: Record<string, number> = {
  amp: 0x26,
  lt: 0x3c,
  gt: 0x3e,
  quot: 0x22,
  apos: 0x27,
  sol: 0x2f,
  bsol: 0x5c,
  plus: 0x2b,
  equals: 0x3d,
  lowbar: 0x5f,
  period: 0x2e,
  colon: 0x3a,
  semi: 0x3b,
  comma: 0x2c,
  excl: 0x21,
  quest: 0x3f,
  num: 0x23,
  dollar: 0x24,
  percnt: 0x25,
  ast: 0x2a,
  lpar: 0x28,
  rpar: 0x29,
  lsqb: 0x5b,
  rsqb: 0x5d,
  lcub: 0x7b,
  rcub: 0x7d,
  verbar: 0x7c,
  tilde: 0x7e,
  hat: 0x5e,
  grave: 0x60,
  commat: 0x40,
  hyphen: 0x2d,
  dash: 0x2d,
};

/** The base64 and base64url alphabets with `=`: 1 per member byte. */
export const B64 = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-') B64[c.charCodeAt(0)] = 1;
/** Bytes that end an escaped run: whitespace, quotes, angle brackets, control bytes. */
const STOP = new Uint8Array(256);
for (let c = 0; c <= 0x20; c++) STOP[c] = 1;
for (const c of `"'<>\``) STOP[c.charCodeAt(0)] = 1;
STOP[0x7f] = 1;

export interface DecodedNeedle<T> {
  /** The form's bytes (latin1), compared ignoring ASCII case when `caseless`. */
  bytes: string;
  caseless: boolean;
  /** Searched in wrapped base64 too (the base64 family). */
  base64: boolean;
  info: T;
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/** The byte (or UTF-8 bytes) an escape at `i` stands for, and its length; null if none starts there. */
export function escapeAt(buf: Buffer, i: number): { bytes: number[]; len: number } | null {
  const c = buf[i];
  if (c === 0x25) {
    const h = hexVal(buf[i + 1] ?? -1);
    const l = hexVal(buf[i + 2] ?? -1);
    return h >= 0 && l >= 0 ? { bytes: [h * 16 + l], len: 3 } : null;
  }
  if (c === 0x5c) {
    if (buf[i + 1] === 0x2f) return { bytes: [0x2f], len: 2 };
    if (buf[i + 1] !== 0x75) return null;
    const v = hex4(buf, i + 2);
    if (v < 0) return null;
    // A surrogate pair (JSON's spelling of an astral character, e.g. PHP's json_encode) is one
    // character: each half alone would decode to U+FFFD and the secret would not be seen.
    if (v >= 0xd800 && v <= 0xdbff && buf[i + 6] === 0x5c && buf[i + 7] === 0x75) {
      const lo = hex4(buf, i + 8);
      if (lo >= 0xdc00 && lo <= 0xdfff) return { bytes: utf8(0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00)), len: 12 };
    }
    return { bytes: utf8(v), len: 6 };
  }
  if (c !== 0x26) return null;
  if (buf[i + 1] === 0x23) {
    const hex = (buf[i + 2] ?? 0) | 0x20;
    let k = hex === 0x78 ? i + 3 : i + 2;
    const first = k;
    let v = 0;
    for (; k < buf.length && k - first < 8; k++) {
      const d = hex === 0x78 ? hexVal(buf[k] ?? -1) : (buf[k] ?? -1) >= 0x30 && (buf[k] ?? -1) <= 0x39 ? (buf[k] ?? 0) - 0x30 : -1;
      if (d < 0) break;
      v = v * (hex === 0x78 ? 16 : 10) + d;
    }
    if (k === first || v > 0x10ffff) return null;
    if (buf[k] === 0x3b) k++;
    return { bytes: utf8(v), len: k - i };
  }
  let k = i + 1;
  while (k < buf.length && k - i <= 8 && ((buf[k] ?? 0) | 0x20) >= 0x61 && ((buf[k] ?? 0) | 0x20) <= 0x7a) k++;
  if (buf[k] !== 0x3b) return null;
  const v = NAMED[buf.subarray(i + 1, k).toString('latin1')];
  return v === undefined ? null : { bytes: [v], len: k + 1 - i };
}

/** A cheap necessary condition for escapeAt (no allocation): on binary data one byte in 85 is
 * `%`, `&` or `\\`, and almost none of them starts an escape. */
function mayEscape(buf: Buffer, i: number): boolean {
  const c = buf[i];
  const d = buf[i + 1] ?? 0;
  if (c === 0x25) return hexVal(d) >= 0;
  if (c === 0x5c) return d === 0x2f || d === 0x75;
  const l = d | 0x20;
  return d === 0x23 || (l >= 0x61 && l <= 0x7a);
}

/** The four hex digits at i as a number, or −1. */
function hex4(buf: Buffer, i: number): number {
  let v = 0;
  for (let k = 0; k < 4; k++) {
    const d = hexVal(buf[i + k] ?? -1);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

function utf8(cp: number): number[] {
  return [...Buffer.from(String.fromCodePoint(cp), 'utf8')];
}

export class DecodedFinder<T> {
  /** Longest original span a find can have. */
  readonly window: number;
  private readonly all: Array<{ bytes: Buffer; caseless: boolean; info: T }>;
  private readonly b64: Array<{ bytes: Buffer; info: T }>;

  constructor(needles: readonly DecodedNeedle<T>[]) {
    // ASCII case only, like the decoded text it is compared with (`low` in decodeRun): latin1
    // toLowerCase() also changed UTF-8 lead bytes (0xC3 → 0xE3), so a non-ASCII secret never matched.
    this.all = needles.map((n) => ({
      bytes: Buffer.from(n.caseless ? n.bytes.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : n.bytes, 'latin1'),
      caseless: n.caseless,
      info: n.info,
    }));
    this.b64 = needles.filter((n) => n.base64).map((n) => ({ bytes: Buffer.from(n.bytes, 'latin1'), info: n.info }));
    const longest = Math.max(0, ...needles.map((n) => n.bytes.length));
    this.window = Math.min(MAX_WINDOW, longest * MAX_ESCAPE);
  }

  get empty(): boolean {
    return this.all.length === 0;
  }

  /** `onRun`, when given, is called for every maximal run of ≥ MIN_WRAPPED_LINE base64 bytes
   * (a run reaching back past `from` starts at `from`), from the same pass that looks for
   * wrapped base64: the matcher's run scans (aws-secret-access-key) ride on it. */
  find(buf: Buffer, from: number, found: (start: number, end: number, info: T) => void, onRun?: (start: number, end: number, bits: number) => void): void {
    if (this.all.length > 0) this.escapedRuns(buf, from, found);
    if (this.b64.length > 0) this.wrapped(buf, from, found, onRun);
    else if (onRun) forEachLongRun(buf, from, MIN_WRAPPED_LINE, onRun);
  }

  private escapedRuns(buf: Buffer, from: number, found: (start: number, end: number, info: T) => void): void {
    // The next `%`, `&` and `\` by native search (memchr), so text without them costs three calls.
    const next = [buf.indexOf(0x25, from), buf.indexOf(0x26, from), buf.indexOf(0x5c, from)];
    const BYTES = ESC_BYTES;
    let i = from;
    for (let seen = 0; ; seen++) {
      // Dense (random bytes: one in 85 is one of the three): one call per byte found costs more
      // than a SIMD pass over the rest (long-runs-wasm.ts, `escapes`).
      if (seen === DENSE && useWasmRuns && buf.length - i >= WASM_RUNS_MIN && buf.length - i <= MAX_INPUT) {
        const w = longRuns(RUN_TABLES);
        if (w) return this.escapedFrom(w, buf, from, i, found);
      }
      let j = -1;
      for (let k = 0; k < 3; k++) {
        if ((next[k] ?? -1) >= 0 && (next[k] ?? 0) < i) next[k] = buf.indexOf(BYTES[k] ?? 0, i);
        const n = next[k] ?? -1;
        if (n >= 0 && (j < 0 || n < j)) j = n;
      }
      if (j < 0) return;
      i = this.escapeRunAt(buf, from, j, found);
    }
  }

  /** The rest of `escapedRuns` from i on, with the offsets where an escape may start from WebAssembly. */
  private escapedFrom(w: LongRunsApi, buf: Buffer, from: number, i: number, found: (start: number, end: number, info: T) => void): void {
    const count = w.escapes(buf, i);
    const list = w.list;
    const at = w.at;
    const base = i;
    for (let k = 0; k < count; k++) {
      const j = base + (list[at + k] as number);
      if (j >= i) i = this.escapeRunAt(buf, from, j, found);
    }
  }

  /** At a `%`, `&` or `\` at j: the escaped run around it, if an escape starts there. Returns
   * where the search continues. */
  private escapeRunAt(buf: Buffer, from: number, j: number, found: (start: number, end: number, info: T) => void): number {
    if (!mayEscape(buf, j) || !escapeAt(buf, j)) return j + 1;
    let s = j;
    while (s > from && !STOP[buf[s - 1] ?? 0]) s--;
    let e = j;
    while (e < buf.length && !STOP[buf[e] ?? 0]) e++;
    this.decodeRun(buf, s, e, found);
    return e + 1;
  }

  private decodeRun(buf: Buffer, s: number, e: number, found: (start: number, end: number, info: T) => void): void {
    const out: number[] = [];
    const at: number[] = []; // original offset of each decoded byte
    const to: number[] = []; // original end of each decoded byte
    for (let i = s; i < e;) {
      const esc = escapeAt(buf, i);
      const len = esc ? esc.len : 1;
      for (const b of esc ? esc.bytes : [buf[i] ?? 0]) {
        out.push(b);
        at.push(i);
        to.push(i + len);
      }
      i += len;
    }
    if (out.length === e - s) return; // nothing was decoded (escapes only looked like ones)
    const dec = Buffer.from(out);
    const low = Buffer.from(out.map((b) => (b >= 0x41 && b <= 0x5a ? b | 0x20 : b)));
    for (const n of this.all) {
      const hay = n.caseless ? low : dec;
      for (let k = hay.indexOf(n.bytes); k >= 0; k = hay.indexOf(n.bytes, k + 1)) {
        const os = at[k] ?? s;
        const oe = to[k + n.bytes.length - 1] ?? e;
        if (oe - os !== n.bytes.length) found(os, oe, n.info); // covers an escape
      }
    }
  }

  /** Base64 lines of at least MIN_WRAPPED_LINE characters joined across their line breaks. */
  private wrapped(buf: Buffer, from: number, found: (start: number, end: number, info: T) => void, onRun?: (start: number, end: number, bits: number) => void): void {
    let parts: Array<[number, number]> = [];
    const flush = (): void => {
      if (parts.length > 1) this.searchChain(buf, parts, found);
      parts = [];
    };
    // Only a line break right after a run of ≥ MIN_WRAPPED_LINE base64 characters can join a
    // chain, so those runs are enumerated (a skip loop, like runs.ts) instead of every line
    // break: pretty-printed JSON has one every ~20 bytes and none of them qualifies. A break that
    // does not qualify only ever ended a chain, and the next qualifying one ends it anyway unless
    // its line is the chain's last part, which cannot hold a break in between.
    forEachLongRun(buf, from, MIN_WRAPPED_LINE, (ls, lineEnd, bits) => {
      onRun?.(ls, lineEnd, bits);
      const nl = buf[lineEnd] === 0x0a ? lineEnd : buf[lineEnd] === 0x0d && buf[lineEnd + 1] === 0x0a ? lineEnd + 1 : -1;
      if (nl < 0) return;
      let re = nl + 1;
      while (re < buf.length && B64[buf[re] ?? 0]) re++;
      if (re === nl + 1) {
        flush();
        return;
      }
      // The line before this break continues the chain when it is the chain's last part, whole.
      const last = parts[parts.length - 1];
      if (!(last && last[0] === ls && last[1] === lineEnd)) {
        flush();
        parts.push([ls, lineEnd]);
      }
      parts.push([nl + 1, re]);
    });
    flush();
  }

  private searchChain(buf: Buffer, parts: Array<[number, number]>, found: (start: number, end: number, info: T) => void): void {
    const joined = Buffer.concat(parts.map(([a, b]) => buf.subarray(a, b)));
    const at: number[] = [];
    for (const [a, b] of parts) for (let i = a; i < b; i++) at.push(i);
    for (const n of this.b64) {
      for (let k = joined.indexOf(n.bytes); k >= 0; k = joined.indexOf(n.bytes, k + 1)) {
        const os = at[k] ?? 0;
        const oe = (at[k + n.bytes.length - 1] ?? 0) + 1;
        if (oe - os !== n.bytes.length) found(os, oe, n.info); // spans a line break
      }
    }
  }
}

/** Calls `found(start, end)` for every maximal run of ≥ `min` base64 bytes in [from, buf.length)
 * (a run reaching back past `from` starts at `from`), in order. Looks at byte i + min − 1 first,
 * so text without long runs costs about one byte in `min`. */
export function forEachLongRun(buf: Buffer, from: number, min: number, found: (start: number, end: number, bits: number) => void): void {
  const n = buf.length;
  if (useWasmRuns && n - from >= WASM_RUNS_MIN && n - from <= MAX_INPUT) {
    const w = longRuns(RUN_TABLES);
    if (w) return w.each(buf, from, min, found);
  }
  // Not collected here: bits that pass every check.
  forEachLongRunJs(buf, from, min, (s, e) => found(s, e, ALL_CHECK_BITS));
}

/** Inputs from this length on go through long-runs-wasm.ts (a copy; shorter ones: no copy). */
const WASM_RUNS_MIN = 1024;
/** Escape-starting bytes met by `indexOf` before the rest goes to WebAssembly (escapedRuns). */
const DENSE = 16;
const ESC_BYTES = [0x25, 0x26, 0x5c] as const;
/** Per byte d: bit k set when ESC_BYTES[k] followed by d passes mayEscape (derived from it). */
const ESC_NEXT = new Uint8Array(256);
ESC_BYTES.forEach((c, k) => {
  for (let d = 0; d < 256; d++) if (mayEscape(Buffer.from([c, d]), 0)) ESC_NEXT[d] = (ESC_NEXT[d] ?? 0) | (1 << k);
});
const RUN_TABLES: RunTables = { alphabet: B64, classes: CHECK_CLASS, escBytes: ESC_BYTES, escNext: ESC_NEXT };
type LongRunsApi = NonNullable<ReturnType<typeof longRuns>>;
let useWasmRuns = true;
/** Tests compare both loops: false keeps every input on the JavaScript one. */
export function setWasmRuns(on: boolean): void {
  useWasmRuns = on;
}

function forEachLongRunJs(buf: Buffer, from: number, min: number, found: (start: number, end: number) => void): void {
  const n = buf.length;
  let i = from;
  // Invariant: i === from, or buf[i − 1] is not a base64 byte.
  while (i + min <= n) {
    const j = i + min - 1;
    if (!B64[buf[j] as number]) {
      i = j + 1;
      continue;
    }
    let k = j - 1;
    while (k >= i && B64[buf[k] as number]) k--;
    if (k >= i) {
      i = k + 1;
      continue;
    }
    let e = j + 1;
    while (e < n && B64[buf[e] as number]) e++;
    found(i, e);
    i = e + 1;
  }
}
