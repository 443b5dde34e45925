/**
 * Token formats the scrubber redacts, compiled with RE2 (linear time: a hostile body cannot make a
 * pattern backtrack). Compilation is the only place a pattern can fail: `compilePatterns` throws at
 * load time, the scrubber never throws on input.
 *
 * Two shapes of pattern:
 * - a plain pattern: every match (or its `secretGroup`) is replaced by `[REDACTED:<id>]`;
 * - a block pattern (`end` set, e.g. PEM private keys): from a match of `regex` up to and including
 *   the next match of `end`, everything is replaced by one marker. The block is dropped as it streams
 *   (never held), up to `maxLength` bytes; see docs/scrubbing.md for why that fails closed.
 */
import { createRequire } from 'node:module';
import type RE2Type from 're2';
import { maxMatchBytes } from './regex-length.js';
import { runSpecOf, type RunSpec } from './runs.js';
import { boundaryStart, exactLead } from './lead.js';

export { BUILTIN_PATTERNS, GENERIC_PATTERNS } from './builtin-patterns.js';
import type { PatternCheck, PatternSpec } from './pattern-spec.js';
export type { PatternCheck, PatternSpec } from './pattern-spec.js';

// re2 is a CommonJS native addon; createRequire keeps ESM + NodeNext happy without esModuleInterop tricks.
const RE2 = createRequire(import.meta.url)('re2') as typeof RE2Type;
export type RE2 = RE2Type;

const CHECKS: readonly string[] = ['mixed-alnum-not-hex', 'has-digit'] satisfies PatternCheck[];

export interface CompiledPattern {
  id: string;
  /** Global + indices (`gd`) RE2: `exec` on a Buffer returns byte offsets for every group. */
  re: RE2;
  /** Upper bound of one match in bytes (Infinity for unbounded repetition). Block: the cap. */
  maxLength: number;
  secretGroup: number | undefined;
  minEntropy: number;
  check: PatternCheck | undefined;
  /** Lower-cased keywords, or undefined (always run). */
  keywords: readonly string[] | undefined;
  block: { end: RE2; endMaxLength: number; beginMaxLength: number; minBody: number } | undefined;
  /** Set when the regex is an isolated fixed-length run of one class: scanned by a byte loop. */
  run: RunSpec | undefined;
  /** The literal every match starts with, case and all (lead.ts), or undefined. */
  lead: Buffer | undefined;
  /** Every match starts at a keyword right after a non-word byte (lead.ts boundaryStart). */
  boundary: boolean;
  /** The pattern source (for reports and tooling). */
  source: string;
  flags: string;
}

/** Default cap for a block pattern: RSA-16384 private keys are ~12.5 KiB of PEM; 64 KiB is room
 * for any key and a few certificates chained behind it. */
export const DEFAULT_BLOCK_CAP = 64 * 1024;

const ID_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function compilePatterns(specs: readonly PatternSpec[]): CompiledPattern[] {
  const ids = new Set<string>();
  return specs.map((spec) => {
    const fail = (why: string): never => {
      throw new Error(`pattern ${String(spec.id)}: ${why}`);
    };
    if (typeof spec.id !== 'string' || !ID_RE.test(spec.id)) fail('id must match [a-z0-9][a-z0-9._-]{0,63}');
    if (ids.has(spec.id)) fail('duplicate id');
    ids.add(spec.id);
    if (typeof spec.regex !== 'string' || spec.regex.length === 0) fail('regex is empty');
    if (spec.regex.length > 4096) fail('regex longer than 4096 characters');
    const flags = spec.flags ?? '';
    if (!/^[ims]*$/.test(flags)) fail(`unsupported flags "${flags}" (allowed: i, m, s)`);
    const re = compileOne(spec.regex, flags, fail);
    if (re.test('')) fail('matches the empty string');
    if (spec.minEntropy !== undefined && !(spec.minEntropy >= 0 && spec.minEntropy <= 8)) fail('minEntropy must be within 0..8');
    if (spec.check !== undefined && !CHECKS.includes(spec.check)) fail(`unknown check "${String(spec.check)}"`);
    if (spec.keywords !== undefined) {
      if (!Array.isArray(spec.keywords) || spec.keywords.length === 0) fail('keywords must be a non-empty list');
      for (const k of spec.keywords) if (typeof k !== 'string' || k.length === 0 || k.length > 64) fail('each keyword must be 1..64 characters');
    }
    const groups = countGroups(re);
    if (spec.secretGroup !== undefined) {
      if (!Number.isInteger(spec.secretGroup) || spec.secretGroup < 0 || spec.secretGroup > groups) {
        fail(`secretGroup ${spec.secretGroup} does not exist (the regex has ${groups} groups)`);
      }
    }
    let block: CompiledPattern['block'];
    let maxLength = maxMatchBytes(spec.regex);
    if (spec.end !== undefined) {
      const end = compileOne(spec.end, flags, (why) => fail(`end: ${why}`));
      if (end.test('')) fail('end matches the empty string');
      const endMaxLength = maxMatchBytes(spec.end);
      if (!Number.isFinite(endMaxLength) || !Number.isFinite(maxLength)) fail('a block pattern needs bounded begin and end regexes');
      const cap = spec.maxLength ?? DEFAULT_BLOCK_CAP;
      if (!Number.isInteger(cap) || cap < 1 || cap > 16 * 1024 * 1024) fail('maxLength must be within 1..16 MiB');
      block = { end, endMaxLength, beginMaxLength: maxLength, minBody: spec.minBody ?? 0 };
      maxLength = cap;
    } else if (spec.minBody !== undefined || spec.maxLength !== undefined) {
      fail('minBody and maxLength apply only to block patterns (with end)');
    }
    return {
      id: spec.id,
      re,
      maxLength,
      secretGroup: spec.secretGroup,
      minEntropy: spec.minEntropy ?? 0,
      check: spec.check,
      keywords: spec.keywords && keywordSpellings(spec.keywords),
      block,
      run: block ? undefined : runSpecOf(spec.regex, flags),
      lead: leadOf(spec.regex, flags, spec.keywords),
      boundary: spec.keywords !== undefined && boundaryStart(spec.regex, spec.keywords, flags),
      source: spec.regex,
      flags,
    };
  });
}

function leadOf(source: string, flags: string, keywords: readonly string[] | undefined): Buffer | undefined {
  const lead = exactLead(source, flags, keywords);
  return lead === undefined ? undefined : Buffer.from(lead, 'latin1');
}

function compileOne(source: string, flags: string, fail: (why: string) => never): RE2 {
  try {
    return new RE2(source, `${flags}gd`);
  } catch (e) {
    // RE2's message names the construct (e.g. "invalid perl operator: (?="); it holds no secret.
    return fail(e instanceof Error ? e.message : 'does not compile on RE2');
  }
}

function countGroups(re: RE2): number {
  // An alternation with the empty string always matches and reports one slot per group.
  const probe = new RE2(`(?:${re.source})|`, 'd').exec('');
  return probe ? probe.length - 1 : 0;
}

/** Shannon entropy in bits per byte over [start, end) of buf. */
export function shannonEntropy(buf: Buffer, start = 0, end = buf.length): number {
  const n = end - start;
  if (n <= 0) return 0;
  const counts = new Uint32Array(256);
  for (let i = start; i < end; i++) counts[buf[i] ?? 0] = (counts[buf[i] ?? 0] ?? 0) + 1;
  let h = 0;
  for (const c of counts) {
    if (c === 0) continue;
    const p = c / n;
    h -= p * Math.log2(p);
  }
  return h;
}

export function passesCheck(check: PatternCheck | undefined, buf: Buffer, start: number, end: number): boolean {
  if (check === undefined) return true;
  // OR of per-byte class bits, without a branch per byte: on random hex (git SHAs, the common
  // reject) a branch per letter/digit mispredicted about every other byte and this loop cost
  // ~400 ns per 40-byte run, more than the run scan that found it.
  let seen = 0;
  for (let i = start; i < end; i++) seen |= CHECK_CLASS[buf[i] as number] as number;
  return checkBits(check, seen);
}

/** Whether bytes whose CHECK_CLASS bits OR to `seen` pass the check. The bits of a part of a run
 * are a subset of the run's, so a run whose bits fail a check holds no part that passes it. */
export function checkBits(check: PatternCheck | undefined, seen: number): boolean {
  switch (check) {
    case undefined:
      return true;
    case 'mixed-alnum-not-hex':
      return (seen & MIXED) === MIXED;
    case 'has-digit':
      return (seen & DIGIT) !== 0;
  }
}

const UPPER = 1;
const LOWER = 2;
const DIGIT = 4;
const NON_HEX = 8;
const OTHER = 16;
/** Bits that pass every check: for runs whose bits were not collected. */
export const ALL_CHECK_BITS = 0xff;
const MIXED = UPPER | LOWER | DIGIT | NON_HEX;
/** Per byte: UPPER/LOWER (plus NON_HEX past f), DIGIT, or OTHER. */
export const CHECK_CLASS = new Uint8Array(256).fill(OTHER);
for (let c = 0x41; c <= 0x5a; c++) CHECK_CLASS[c] = UPPER | (c > 0x46 ? NON_HEX : 0);
for (let c = 0x61; c <= 0x7a; c++) CHECK_CLASS[c] = LOWER | (c > 0x66 ? NON_HEX : 0);
for (let c = 0x30; c <= 0x39; c++) CHECK_CLASS[c] = DIGIT;

/** The RE2 constructor, for modules that build their own regexes (known-secret needles). */
export function newRE2(source: string, flags: string): RE2 {
  return new RE2(source, flags);
}

/**
 * The keyword index compares ignoring ASCII case only (keywords.ts). A keyword with non-ASCII
 * letters is kept as written and also in Unicode lower and upper case (`Пароль`, `пароль`,
 * `ПАРОЛЬ`), each with its ASCII letters lower-cased: lower-casing it with Unicode rules alone
 * (as before) lost the spelling as written, so `Пароль: …` never reached its regex.
 */
function keywordSpellings(keywords: readonly string[]): string[] {
  const ascii = (k: string): string => k.replace(/[A-Z]+/g, (m) => m.toLowerCase());
  return [...new Set(keywords.flatMap((k) => [k, k.toLowerCase(), k.toUpperCase()].map(ascii)))];
}
