/**
 * A pattern's case-sensitive lead: the literal every match starts with, byte for byte, when the
 * regex opens with one (after `\b` and groups) in a part that is not case-insensitive. The keyword
 * index folds ASCII case (keywords.ts), so it also reports spellings such a regex can never match
 * at: `facebook-page-access-token` (`\b(EAA[MC](?i)…{100,})`) was started by every `eaac`/`eaam`
 * in lower-case hex (git SHAs), and, being unbounded, each start was a regex pass over the rest of
 * the buffer (~3.5% of scrubbed proxy CPU, docs/benchmarks.md "Scrubbing → Ninth round"). The
 * matcher skips a hit of a keyword that begins with the lead when the bytes there are not the
 * lead exactly: a real match starts with the lead itself, which is a hit of its own.
 *
 * Conservative by construction: no lead (undefined) unless the regex is case-sensitive up to the
 * lead (no `i` flag, no inline flag before it), neither the lead's last character nor a group
 * holding it is optional, and no alternation in a group that holds the lead (or at the top level)
 * offers another start.
 */

const LITERAL = /[A-Za-z0-9_-]/;

export function exactLead(source: string, flags: string): string | undefined {
  if (flags.includes('i')) return undefined;
  let i = 0;
  let depth = 0;
  for (;;) {
    if (source.startsWith('\\b', i)) i += 2;
    else if (source.startsWith('(?:', i)) {
      depth++;
      i += 3;
    } else if (source[i] === '(' && source[i + 1] !== '?') {
      depth++;
      i++;
    } else break;
  }
  let lead = '';
  while (i < source.length && LITERAL.test(source[i] ?? '')) lead += source[i++];
  // `EAA?`, `ab*`, `ab{0,1}`: the last character may be absent.
  if ('?*+{'.includes(source[i] ?? '') && i < source.length) lead = lead.slice(0, -1);
  if (lead.length === 0) return undefined;
  // An alternation in a group that holds the lead (its depth or less, before that group closed)
  // or at the top level would let a match start otherwise.
  let d = depth;
  let least = depth;
  for (; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === '[') {
      // A class: up to its closing bracket (a `]` first in the class, or escaped, is a member).
      i++;
      if (source[i] === '^') i++;
      if (source[i] === ']') i++;
      while (i < source.length && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
    } else if (c === '(') d++;
    else if (c === ')') {
      // Closing a group that holds the lead: an optional group (`(EAA)?`) may match nothing.
      if (--d < least) {
        least = d;
        if ('?*{'.includes(source[i + 1] ?? '') && i + 1 < source.length) return undefined;
      }
    } else if (c === '|' && d <= least) return undefined;
  }
  return lead;
}
