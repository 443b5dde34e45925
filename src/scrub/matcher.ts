/**
 * Finding things to redact in one byte window. Pure: no stream state here (see stream.ts).
 *
 * Everything works on Buffers: RE2 reports byte offsets for Buffer input, so non-UTF-8 bytes pass
 * through untouched and offsets never drift. Known secrets are one RE2 alternation of literal
 * needles (one pass whatever their number); token patterns are prefiltered by their keywords (one
 * case-insensitive RE2 alternation pass) and only the patterns whose keyword occurs are run.
 * RE2.Set was measured and rejected: with ~220 gitleaks rules its DFA thrashes on varied text
 * (~100 ms per KiB) and it may give up silently when its memory budget is hit.
 */
import type { CompiledPattern, RE2 } from './patterns.js';
import { newRE2, passesCheck, shannonEntropy } from './patterns.js';
import { secretNeedles } from './encodings.js';

export interface KnownSecret {
  name: string;
  value: string;
  replacement: string;
}

export type Redaction = { kind: 'secret' | 'pattern'; id: string };

export interface Candidate {
  /** Whole match: what must be visible before the match can be trusted. */
  start: number;
  end: number;
  /** The bytes actually replaced. */
  rStart: number;
  rEnd: number;
  replacement: Buffer;
  redaction: Redaction;
  /** Set for a block pattern's begin marker. */
  block?: CompiledPattern;
}

interface NeedleInfo {
  replacement: Buffer;
  redaction: Redaction;
}

export class Matcher {
  readonly plain: readonly CompiledPattern[];
  readonly blocks: readonly CompiledPattern[];
  /** Longest match any finder can produce, in bytes (block patterns: their begin lookahead). */
  readonly window: number;
  readonly hasUnbounded: boolean;
  private readonly needleRe: RE2 | undefined;
  private readonly needles = new Map<string, NeedleInfo>();
  /** Needles with non-ASCII bytes: RE2 works in UTF-8 and cannot name a raw byte, so indexOf. */
  private readonly byteNeedles: { bytes: Buffer; info: NeedleInfo }[] = [];
  /** Patterns without keywords: run on every window. */
  private readonly always: CompiledPattern[] = [];
  /** One case-insensitive alternation of every keyword (longest first). */
  private readonly keywordRe: RE2 | undefined;
  /** keyword → patterns to run when it is seen (including those of keywords it contains). */
  private readonly byKeyword = new Map<string, CompiledPattern[]>();

  constructor(secrets: readonly KnownSecret[], patterns: readonly CompiledPattern[], unboundedWindow: number) {
    this.plain = patterns.filter((p) => p.block === undefined);
    this.blocks = patterns.filter((p) => p.block !== undefined);
    let window = 0;
    const ascii: string[] = [];
    for (const s of secrets) {
      if (s.value.length === 0) continue; // an empty secret would match everywhere; nothing to hide
      const info: NeedleInfo = { replacement: Buffer.from(s.replacement, 'utf8'), redaction: { kind: 'secret', id: s.name } };
      for (const n of secretNeedles(s.value)) {
        if (this.needles.has(n.bytes)) continue; // same bytes from an earlier secret: first wins
        window = Math.max(window, n.bytes.length);
        if (/^[\x00-\x7f]*$/.test(n.bytes)) {
          this.needles.set(n.bytes, info);
          ascii.push(n.bytes);
        } else {
          this.needles.set(n.bytes, info);
          this.byteNeedles.push({ bytes: Buffer.from(n.bytes, 'latin1'), info });
        }
      }
    }
    // Longest first: RE2 alternation is leftmost-first, so at one start the longest form wins.
    ascii.sort((a, b) => b.length - a.length);
    this.needleRe = ascii.length > 0 ? newRE2(ascii.map(escapeLiteral).join('|'), 'g') : undefined;

    let unbounded = false;
    for (const p of this.plain) {
      if (Number.isFinite(p.maxLength)) window = Math.max(window, p.maxLength);
      else unbounded = true;
    }
    for (const p of this.blocks) {
      const b = p.block;
      if (b) window = Math.max(window, b.beginMaxLength + b.minBody + b.endMaxLength);
    }
    if (unbounded) window = Math.max(window, unboundedWindow);
    this.hasUnbounded = unbounded;
    this.window = window;
    const own = new Map<string, CompiledPattern[]>();
    for (const p of this.plain) {
      if (!p.keywords) this.always.push(p);
      else for (const k of p.keywords) own.set(k, [...(own.get(k) ?? []), p]);
    }
    // At one position the alternation reports only the longest keyword, so a keyword also
    // triggers the patterns of every keyword it contains ("sk-ant-api03" contains "sk-").
    for (const k of own.keys()) {
      const ps = new Set<CompiledPattern>();
      for (const [k2, list] of own) if (k.includes(k2)) for (const p of list) ps.add(p);
      this.byKeyword.set(k, [...ps]);
    }
    const kws = [...own.keys()].sort((a, b) => b.length - a.length);
    this.keywordRe = kws.length > 0 ? newRE2(`(?i)(?:${kws.map(escapeLiteral).join('|')})`, 'g') : undefined;
  }

  get empty(): boolean {
    return this.needles.size === 0 && this.plain.length === 0 && this.blocks.length === 0;
  }

  /** Every candidate whose match starts at or after `from` (bytes before `from` are context only). */
  find(buf: Buffer, from: number): Candidate[] {
    const out: Candidate[] = [];
    if (this.needleRe) {
      const re = this.needleRe;
      re.lastIndex = from;
      for (let m = re.exec(buf); m; m = re.exec(buf)) {
        const info = this.needles.get(m[0].toString('latin1'));
        const end = m.index + m[0].length;
        if (info) out.push({ start: m.index, end, rStart: m.index, rEnd: end, ...info });
      }
    }
    for (const { bytes, info } of this.byteNeedles) {
      for (let i = buf.indexOf(bytes, from); i >= 0; i = buf.indexOf(bytes, i + bytes.length)) {
        out.push({ start: i, end: i + bytes.length, rStart: i, rEnd: i + bytes.length, ...info });
      }
    }
    if (from < buf.length) {
      for (const p of this.patternsFor(buf)) this.runPattern(p, buf, from, out);
    }
    for (const p of this.blocks) this.runBegin(p, buf, from, out);
    return out;
  }

  /** The patterns worth running on buf: keyword hits (the context included) plus the keyword-less. */
  private patternsFor(buf: Buffer): Iterable<CompiledPattern> {
    const re = this.keywordRe;
    if (!re) return this.always;
    const run = new Set<CompiledPattern>(this.always);
    const seen = new Set<string>();
    re.lastIndex = 0;
    for (let m = re.exec(buf); m; m = re.exec(buf)) {
      const k = m[0].toString('latin1').toLowerCase();
      if (!seen.has(k)) {
        seen.add(k);
        for (const p of this.byKeyword.get(k) ?? []) run.add(p);
        if (seen.size === this.byKeyword.size) break;
      }
      // Overlapping search: "abcd" holds both "ab" and "bcd". (A one-call non-overlapping scan
      // plus closing trigger sets over suffix/prefix overlaps was tried: with 1-char overlaps it
      // ran most patterns on every window and was slower.)
      re.lastIndex = m.index + 1;
    }
    return run;
  }

  private runPattern(p: CompiledPattern, buf: Buffer, from: number, out: Candidate[]): void {
    const re = p.re;
    re.lastIndex = from;
    const marker = Buffer.from(`[REDACTED:${p.id}]`, 'latin1');
    for (let m = re.exec(buf); m; m = re.exec(buf)) {
      const start = m.index;
      const end = start + m[0].length;
      if (end === start) {
        re.lastIndex = end + 1; // cannot happen (compile rejects empty matches); never loop
        continue;
      }
      const span = secretSpan(m.indices, p.secretGroup) ?? [start, end];
      const [rs, re_] = span;
      if (re_ <= rs) continue;
      if (p.minEntropy > 0 && shannonEntropy(buf, rs, re_) < p.minEntropy) continue;
      if (!passesCheck(p.check, buf, rs, re_)) continue;
      out.push({ start, end, rStart: rs, rEnd: re_, replacement: marker, redaction: { kind: 'pattern', id: p.id } });
    }
  }

  private runBegin(p: CompiledPattern, buf: Buffer, from: number, out: Candidate[]): void {
    const re = p.re;
    re.lastIndex = from;
    const marker = Buffer.from(`[REDACTED:${p.id}]`, 'latin1');
    for (let m = re.exec(buf); m; m = re.exec(buf)) {
      const end = m.index + m[0].length;
      out.push({ start: m.index, end, rStart: m.index, rEnd: end, replacement: marker, redaction: { kind: 'pattern', id: p.id }, block: p });
    }
  }
}

/** The [start, end) of the group to redact: explicit group, else the first non-empty one. */
function secretSpan(indices: RegExpIndicesArray | undefined, group: number | undefined): [number, number] | undefined {
  if (!indices) return undefined;
  if (group !== undefined) {
    const g = indices[group];
    return g ? [g[0], g[1]] : undefined;
  }
  for (let i = 1; i < indices.length; i++) {
    const g = indices[i];
    if (g && g[1] > g[0]) return [g[0], g[1]];
  }
  return indices[0] ? [indices[0][0], indices[0][1]] : undefined;
}

function escapeLiteral(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    out += alnum ? s[i] : `\\x{${c.toString(16)}}`;
  }
  return out;
}
