/**
 * A pattern's case-sensitive lead: the literal every match starts with, byte for byte, when the
 * regex opens with one (after `\b` and groups) in a part that is not case-insensitive. The keyword
 * index folds ASCII case (keywords.ts), so it also reports spellings such a regex can never match
 * at: `facebook-page-access-token` (`\b(EAA[MC](?i)…{100,})`) was started by every `eaac`/`eaam`
 * in lower-case hex (git SHAs), and, being unbounded, each start was a regex pass over the rest of
 * the buffer (~3.5% of scrubbed proxy CPU, docs/benchmarks.md "Scrubbing → Ninth round"). The
 * matcher skips a hit of a keyword that begins with the lead when the bytes there are not the
 * lead exactly: a real match starts with the lead, spelled exactly, and that start must itself be
 * a keyword hit (checked here: the literal characters opening every match begin with a keyword),
 * or a skipped hit inside the match could be its only one (`EAA(?i)…eaax`, keyword `eaax`).
 *
 * Conservative by construction: no lead (undefined) unless the pattern has keywords, the regex is
 * case-sensitive up to the lead (no `i` flag, no inline flag before it), neither the lead's last
 * character nor a group holding it is optional, every match opens with a keyword, no alternation
 * in a group that holds the lead (or at the top level) offers another start, and the regex has no
 * `\Q…\E` (whose `(`, `|` are literals the walk would misread). Found by an attack review
 * (test/unit/scrub-lead.test.ts "attack review" and the random-regex differential).
 */

const LITERAL = /[A-Za-z0-9_-]/;

export function exactLead(source: string, flags: string, keywords: readonly string[] | undefined): string | undefined {
  if (flags.includes('i') || keywords === undefined || source.includes('\\Q')) return undefined;
  const opened = openers(source, 0, true);
  const depth = opened.depth;
  let i = opened.i;
  let lead = '';
  while (i < source.length && LITERAL.test(source[i] ?? '')) lead += source[i++];
  // `EAA?`, `ab*`, `ab{0,1}`: the last character may be absent.
  if ('?*+{'.includes(source[i] ?? '') && i < source.length) lead = lead.slice(0, -1);
  if (lead.length === 0) return undefined;
  // The skipped hits are only safe when every match's start is itself a hit of a keyword (one
  // that begins with the lead is then spelled exactly there): `EAA(?i)…eaax` with keyword `eaax`
  // matches `EAAzzeaax`, whose only hit is the `eaax` at its end.
  if (!startsWithKeyword(source, opened.i, keywords)) return undefined;
  // An alternation in a group that holds the lead (its depth or less, before that group closed)
  // or at the top level would let a match start otherwise.
  return walk(source, i, depth, (j, d, least) => (d <= least ? -1 : j)) ? lead : undefined;
}

/** RE2's metacharacters outside a class; any other printable ASCII character stands for itself. */
const META = '\\.+*?()|[]{}^$';

/**
 * True when every string the regex can match from i (past its openers) begins with one of
 * `keywords` (ASCII case folded): the mandatory literal characters from i (plain, escaped
 * punctuation, or a class of plain letters and digits such as `[MC]`, each class multiplying
 * the spellings) until each spelling begins with a keyword. False on anything else.
 */
function startsWithKeyword(source: string, i: number, keywords: readonly string[]): boolean {
  const low = keywords.map(asciiLower);
  let spellings = [''];
  for (;;) {
    if (spellings.every((s) => low.some((k) => s.startsWith(k)))) return true;
    let chars: string;
    let next: number;
    const c = source[i] ?? '';
    if (c === '[') {
      const end = source.indexOf(']', i + 1);
      chars = end < 0 ? '' : source.slice(i + 1, end);
      if (!/^[A-Za-z0-9_]+$/.test(chars)) return false;
      next = end + 1;
    } else if (c === '\\' && /^[!-/:-@[-`{-~]$/.test(source[i + 1] ?? '')) {
      chars = source[i + 1] ?? '';
      next = i + 2;
    } else if (c >= ' ' && c <= '~' && !META.includes(c)) {
      chars = c;
      next = i + 1;
    } else return false;
    // `x?`, `x*`, `x{0,…}`: optional; `x+` once at least, and nothing known after it.
    const q = source[next] ?? '';
    if ('?*{'.includes(q) && next < source.length) return false;
    spellings = spellings.flatMap((s) => [...chars].map((ch) => s + asciiLower(ch)));
    if (spellings.length > 64 || (spellings[0]?.length ?? 0) > 64) return false;
    if (q === '+') return spellings.every((s) => low.some((k) => s.startsWith(k)));
    i = next;
  }
}

function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** Past the groups (capturing and `(?:`; with `boundaries`, `\\b` too) that open the regex at i: where the rest starts and how many groups hold it. */
function openers(source: string, i: number, boundaries: boolean): { i: number; depth: number } {
  let depth = 0;
  for (;;) {
    if (boundaries && source.startsWith('\\b', i)) i += 2;
    else if (source.startsWith('(?:', i)) {
      depth++;
      i += 3;
    } else if (source[i] === '(' && source[i + 1] !== '?') {
      depth++;
      i++;
    } else return { i, depth };
  }
}

/**
 * Walks `source` from i, inside the `depth` groups that hold the match's start, to its end,
 * skipping escapes and classes. False when a group holding the start closes as optional (`(x)?`).
 * `bar(i, d, least)` is called at each `|` (d: the depth there, least: the shallowest depth the
 * walk reached, so d ≤ least is an alternation of a group holding the start) and returns where to
 * go on from (i: just past the bar), or -1 to end the walk with false.
 */
function walk(source: string, i: number, depth: number, bar: (i: number, d: number, least: number) => number): boolean {
  let d = depth;
  let least = depth;
  for (; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === '[') {
      // A class: up to its closing bracket (a `]` first in the class, or escaped, is a member).
      // `[:alpha:]` inside it is one member (RE2): `[[:alpha:](]` holds `(`, it opens no group.
      i++;
      if (source[i] === '^') i++;
      if (source[i] === ']') i++;
      while (i < source.length && source[i] !== ']') {
        const posix = source.startsWith('[:', i) ? source.indexOf(':]', i + 2) : -1;
        i = source[i] === '\\' ? i + 2 : posix >= 0 ? posix + 2 : i + 1;
      }
    } else if (c === '(') d++;
    else if (c === ')') {
      if (--d < least) {
        least = d;
        if ('?*{'.includes(source[i + 1] ?? '') && i + 1 < source.length) return false;
      }
    } else if (c === '|') {
      const next = bar(i, d, least);
      if (next < 0) return false;
      i = next;
    }
  }
  return true;
}

/** One literal character at source[i] (a plain letter, digit, `_`, `-`, or an escaped `.`, `-`, `_`, `/`), or null. */
function literalAt(source: string, i: number): { c: string; next: number } | null {
  const c = source[i] ?? '';
  if (LITERAL.test(c)) return { c, next: i + 1 };
  if (c === '\\' && /[.\-_/]/.test(source[i + 1] ?? '')) return { c: source[i + 1] ?? '', next: i + 2 };
  return null;
}

const WORD = /[A-Za-z0-9_]/;

/**
 * True when every match of the regex starts with a word character right after a non-word one
 * (or the input's start), at an occurrence of one of `keywords` (lower case): the regex opens with
 * `\b`, then groups, then alternatives that each open with a literal beginning with a keyword.
 * Then a keyword hit preceded by a word character starts nothing: `vault-service-token`
 * (`\b((?:hvs\.…|s\.(?i:…)))`, keywords `hvs.` and `s.`) was started by every `s.` that ends a
 * word ("docs."), a regex window each (a quarter of the scrubber's time on English text). Like
 * exactLead, conservative: anything it does not recognise is false.
 */
export function boundaryStart(source: string, keywords: readonly string[], flags: string): boolean {
  if (!source.startsWith('\\b') || source.includes('\\Q')) return false;
  // Case-insensitive, RE2 folds k to U+212A (Kelvin sign) and s to U+017F (long s), bytes that are
  // not ASCII word bytes: `\bs\.…` then matches `ſ.…` right after a word byte, with no keyword
  // hit at its start (no other ASCII character folds outside ASCII). A literal is case-insensitive
  // with the i flag or after a bare `(?i)` (which holds to the end of its group, across `|`:
  // `(?:ab(?i)c|s\.)`); taken as such when one stands anywhere before it.
  const folds = (at: number): boolean => flags.includes('i') || /\(\?[a-zA-Z]*i[a-zA-Z-]*\)/.test(source.slice(0, at));
  const { i, depth } = openers(source, 2, false);
  const low = keywords.map((k) => k.toLowerCase());
  // Each alternative of the innermost group opened (or the regex itself) must open with a literal
  // that begins with a keyword and with a word character; returns where that literal ends, or -1.
  const alternative = (at: number): number => {
    let lead = '';
    let j = at;
    for (let l = literalAt(source, j); l; l = literalAt(source, j)) {
      lead += l.c;
      j = l.next;
    }
    if ('?*{'.includes(source[j] ?? '') && j < source.length) lead = lead.slice(0, -1);
    const lower = lead.toLowerCase();
    if (/[ks]/.test(lower) && folds(at)) return -1;
    return WORD.test(lead[0] ?? '') && low.some((k) => lower.startsWith(k)) ? j : -1;
  };
  const first = alternative(i);
  if (first < 0) return false;
  // Another alternative of the innermost group holding the start opens the same way; an
  // alternation of an outer one (or the top level) could start otherwise.
  return walk(source, first, depth, (j, d, least) => (d === depth && least === depth && depth > 0 ? alternative(j + 1) - 1 : d <= least ? -1 : j));
}
