/**
 * Look-alike host names. A punycode label is decoded and its letters sorted into scripts; a label
 * is suspicious when it mixes scripts outside the combinations UTS 39 §5.2 ("Highly Restrictive")
 * allows for real languages (Latin with Han/Kana, Han/Bopomofo or Han/Hangul), or when it is written
 * wholly in Cyrillic or Greek letters that all look like Latin ones under a Latin top-level label
 * ("аррӏе.com"), or when it holds non-ASCII symbols or punctuation ("a∕b.com"). Digits, hyphens
 * and combining marks (Common/Inherited) belong to no script.
 *
 * This is a heuristic, not the full UTS 39 confusables table: see docs/security.md for its limits.
 */
import { domainToUnicode } from 'node:url';

// One regex per script Turret distinguishes; letters of any other script are grouped as 'Other'.
const SCRIPTS: ReadonlyArray<[string, RegExp]> = [
  ['Latin', /\p{Script=Latin}/u],
  ['Cyrillic', /\p{Script=Cyrillic}/u],
  ['Greek', /\p{Script=Greek}/u],
  ['Armenian', /\p{Script=Armenian}/u],
  ['Georgian', /\p{Script=Georgian}/u],
  ['Hebrew', /\p{Script=Hebrew}/u],
  ['Arabic', /\p{Script=Arabic}/u],
  ['Han', /\p{Script=Han}/u],
  ['Hiragana', /\p{Script=Hiragana}/u],
  ['Katakana', /\p{Script=Katakana}/u],
  ['Hangul', /\p{Script=Hangul}/u],
  ['Bopomofo', /\p{Script=Bopomofo}/u],
  ['Thai', /\p{Script=Thai}/u],
  ['Devanagari', /\p{Script=Devanagari}/u],
  ['Bengali', /\p{Script=Bengali}/u],
  ['Tamil', /\p{Script=Tamil}/u],
  ['Cherokee', /\p{Script=Cherokee}/u],
];
const NEUTRAL = /[\p{Script=Common}\p{Script=Inherited}]/u;
const COMMON = /\p{Script=Common}/u;
// Non-ASCII punctuation and symbols that survive IDNA ("a∕b" with U+2215 DIVISION SLASH) exist to
// imitate ASCII; only the Kana prolonged sound mark has everyday use in names.
const COMMON_OK = new Set(['\u30fc']);
// Script sets that real languages use together (UTS 39 §5.2, Highly Restrictive).
const ALLOWED_MIXES: ReadonlyArray<ReadonlySet<string>> = [
  new Set(['Latin', 'Han', 'Hiragana', 'Katakana']),
  new Set(['Latin', 'Han', 'Bopomofo']),
  new Set(['Latin', 'Han', 'Hangul']),
];
// Lower-case letters that render like Latin ones (IDNA lower-cases before we see them).
const LATIN_LIKE: Readonly<Record<string, string>> = {
  Cyrillic: 'аеорсухіјѕӏһԁԛԝүԍ',
  Greek: 'αοικνρτυχ',
};

function scriptOf(ch: string): string | undefined {
  if (NEUTRAL.test(ch)) return undefined;
  for (const [name, re] of SCRIPTS) if (re.test(ch)) return name;
  return 'Other';
}

/** Scripts used by the letters of one Unicode label. */
export function scriptsOf(label: string): Set<string> {
  const out = new Set<string>();
  for (const ch of label) {
    const s = scriptOf(ch);
    if (s) out.add(s);
  }
  return out;
}

function mixesScripts(scripts: ReadonlySet<string>): boolean {
  if (scripts.size <= 1) return false;
  return !ALLOWED_MIXES.some((allowed) => [...scripts].every((s) => allowed.has(s)));
}

function wholeScriptLatinLookalike(label: string, scripts: ReadonlySet<string>, tld: string): boolean {
  if (scripts.size !== 1 || tld.startsWith('xn--')) return false;
  const [only] = scripts;
  const alike = only === undefined ? undefined : LATIN_LIKE[only];
  if (!alike) return false;
  for (const ch of label) if (scriptOf(ch) !== undefined && !alike.includes(ch)) return false;
  return true;
}

/** A punycode label could start here, in any letter case (`XN--` is the same label as `xn--`). */
const PUNYCODE_ANYWHERE = /xn--/i;

/**
 * True when any punycode label of `host` (canonical, ASCII) decodes to a look-alike. A label that
 * claims to be punycode but does not decode is treated as a look-alike: fail closed.
 */
export function isMixedScriptLookalike(host: string): boolean {
  // Nearly every host has no punycode label: no lower-cased copy, no label array (it runs for
  // every request and every CONNECT).
  if (!PUNYCODE_ANYWHERE.test(host)) return false;
  const labels = host.toLowerCase().split('.');
  const tld = labels[labels.length - 1] ?? '';
  for (const label of labels) {
    if (!label.startsWith('xn--')) continue;
    const unicode = domainToUnicode(label);
    // Undecodable, or punycode that decodes to plain ASCII (never produced by IDNA): fail closed.
    if (unicode === '' || unicode.startsWith('xn--') || /^[\x00-\x7f]*$/.test(unicode)) return true;
    for (const ch of unicode) if (ch > '\u007f' && COMMON.test(ch) && !COMMON_OK.has(ch)) return true;
    const scripts = scriptsOf(unicode);
    if (mixesScripts(scripts) || wholeScriptLatinLookalike(unicode, scripts, tld)) return true;
  }
  return false;
}
