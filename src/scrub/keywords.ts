/**
 * The keyword prefilter: every position where one of the patterns' keywords starts, compared
 * ASCII-case-insensitively. A plain byte loop with a bigram table, not RE2: one case-insensitive
 * RE2 alternation of ~250 keywords measured ~80 MB/s on JSON (and an exec per hit on top), this
 * loop several hundred MB/s. Unlike the alternation it reports *every* keyword at every position
 * (no leftmost-longest shadowing), so a keyword inside a longer one needs no special case.
 *
 * Case folding is ASCII only (keywords are token prefixes such as `ghp_`, `xoxb`, `akia`).
 */

export interface KeywordEntry<T> {
  /** Lower-case keyword bytes. */
  bytes: Buffer;
  items: T[];
}

const SHORT = 1;
const LONG = 2;

const LOWER = new Uint8Array(256);
for (let i = 0; i < 256; i++) LOWER[i] = i >= 0x41 && i <= 0x5a ? i + 0x20 : i;

export class KeywordIndex<T> {
  /** Keywords of one byte, by (lower-case) byte. */
  private readonly single: (KeywordEntry<T>[] | undefined)[] = new Array(256);
  /** Keywords of ≥2 bytes by their lower-case first two bytes (a flat array: Map.get per text
   * bigram was the loop's main cost on English-like text). */
  private readonly byBigram: (KeywordEntry<T>[] | undefined)[] = new Array<KeywordEntry<T>[] | undefined>(65536).fill(undefined);
  /** Per raw bigram (any ASCII case): SHORT where a keyword of one or two bytes starts there,
   * LONG where only keywords of three or more bytes do (then the trigram set decides). The loop
   * reads this table per byte (64 KiB, stays in cache). */
  private readonly flag = new Uint8Array(65536);
  /** Bit set over raw trigrams (any ASCII case) that start a keyword of ≥ 3 bytes (2 MiB). On
   * JSON about one byte in eight starts a flagged bigram ("re", "to", "pa" …) but far fewer a
   * flagged trigram: this second check keeps the slow path rare. */
  private readonly tri = new Uint8Array(1 << 21);
  readonly size: number;

  constructor(keywords: ReadonlyMap<string, T[]>) {
    let n = 0;
    for (const [k, items] of keywords) {
      const bytes = Buffer.from(k.toLowerCase(), 'utf8');
      if (bytes.length === 0) continue;
      for (let i = 0; i < bytes.length; i++) bytes[i] = LOWER[bytes[i] ?? 0] ?? 0;
      const e: KeywordEntry<T> = { bytes, items };
      n++;
      if (bytes.length === 1) {
        const b = bytes[0] ?? 0;
        (this.single[b] ??= []).push(e);
        for (const v of variants(b)) for (let d = 0; d < 256; d++) this.flag[(v << 8) | d] = SHORT;
        continue;
      }
      const bg = ((bytes[0] ?? 0) << 8) | (bytes[1] ?? 0);
      (this.byBigram[bg] ??= []).push(e);
      for (const v0 of variants(bytes[0] ?? 0)) {
        for (const v1 of variants(bytes[1] ?? 0)) {
          const f = (v0 << 8) | v1;
          if (bytes.length === 2) {
            this.flag[f] = SHORT;
            continue;
          }
          if (this.flag[f] !== SHORT) this.flag[f] = LONG;
          for (const v2 of variants(bytes[2] ?? 0)) {
            const t = (f << 8) | v2;
            this.tri[t >>> 3] = (this.tri[t >>> 3] ?? 0) | (1 << (t & 7));
          }
        }
      }
    }
    this.size = n;
  }

  /** Calls `hit(position, entry)` for every keyword occurrence starting in [from, buf.length). */
  scan(buf: Buffer, from: number, hit: (pos: number, e: KeywordEntry<T>) => void): void {
    const n = buf.length;
    // The flag table holds every case variant, so the hot loop reads raw bytes only.
    const flag = this.flag;
    const tri = this.tri;
    if (from >= n) return;
    // Indexes below are in bounds by construction; `as number` keeps the hot loop free of the
    // undefined checks noUncheckedIndexedAccess would otherwise add per byte.
    let c = buf[from] as number;
    const last = n - 1;
    for (let i = from; i < last; i++) {
      const d = buf[i + 1] as number;
      const f = flag[(c << 8) | d] as number;
      if (f !== 0) {
        if (f === SHORT) this.at(buf, i, c, d, hit);
        else if (i + 2 < n) {
          const t = (c << 16) | (d << 8) | (buf[i + 2] as number);
          if (((tri[t >>> 3] as number) & (1 << (t & 7))) !== 0) this.at(buf, i, c, d, hit);
        }
      }
      c = d;
    }
    // At the last byte the "next" byte is 0: one-byte keywords are still flagged there.
    if (flag[c << 8] === SHORT) this.at(buf, last, c, 0, hit);
  }

  private at(buf: Buffer, i: number, rawC: number, rawD: number, hit: (pos: number, e: KeywordEntry<T>) => void): void {
    const c = LOWER[rawC] ?? 0;
    const bg = (c << 8) | (LOWER[rawD] ?? 0);
    const s = this.single[c];
    if (s !== undefined) for (const e of s) hit(i, e);
    if (i + 1 >= buf.length) return;
    const list = this.byBigram[bg];
    if (list !== undefined) for (const e of list) if (matchesAt(buf, i, e.bytes)) hit(i, e);
  }
}

/** A lower-case byte and its upper-case form (ASCII letters only). */
function variants(b: number): number[] {
  return b >= 0x61 && b <= 0x7a ? [b, b - 0x20] : [b];
}

function matchesAt(buf: Buffer, i: number, kw: Buffer): boolean {
  if (i + kw.length > buf.length) return false;
  for (let j = 2; j < kw.length; j++) if ((LOWER[buf[i + j] ?? 0] ?? 0) !== kw[j]) return false;
  return true;
}
