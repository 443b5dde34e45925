/**
 * The case-folded view of a path, for deny rules. Many servers route without regard to letter case
 * (Express by default, IIS, ASP.NET, anything on a case-insensitive file system), so a deny on
 * `/admin/**` must also refuse `/ADMIN/users`, `/%41dmin` (already `Admin` after normalisation)
 * and Unicode spellings that some server folds to the same letters:
 *
 *  - `ſ` (U+017F, long s) upper-cases to `S`, the Kelvin sign `K` (U+212A) lower-cases to `k`,
 *    dotless `ı` upper-cases to `I`: a full Unicode upper → lower round trip catches them;
 *  - compatibility forms (fullwidth `Ａ`, ligature `ﬀ`) fold with NFKC, as "best fit" mappings do;
 *  - Turkish dotted `İ` lower-cases to `i` + U+0307; a Turkish-locale server sees `i`, so we do too.
 *
 * The fold only ever widens what a deny matches; allows are not tested against it (an allow
 * already has to hold for every other view). Escapes of ASCII bytes stay as they are (`%2F` is
 * data, never a separator; its hex digits are not letters to fold); escapes that decode to
 * non-ASCII UTF-8 are folded and written back (ASCII results literally when unreserved).
 */

const UNRESERVED = /^[A-Za-z0-9\-._~/]$/;
const ESCAPE_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function foldChars(s: string): string {
  return s
    .normalize('NFKC')
    .toUpperCase()
    .toLowerCase()
    .replace(/i\u0307/g, 'i')
    .normalize('NFKC');
}

/** Emit folded text: unreserved ASCII and "/" literally, other ASCII and non-ASCII as escapes. */
function emit(folded: string): string {
  let out = '';
  for (const ch of folded) {
    if (UNRESERVED.test(ch)) out += ch;
    else out += [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  }
  return out;
}

function foldEscapes(run: string): string {
  const bytes = Buffer.from(run.replace(/%/g, ''), 'hex');
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return run.toUpperCase(); // not UTF-8: no server reads letters in it
  }
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    out += cp < 0x80 ? `%${cp.toString(16).toUpperCase().padStart(2, '0')}` : emit(foldChars(ch));
  }
  return out;
}

function foldLiteral(text: string): string {
  // Fast path: plain ASCII only needs lower case; '*' and other pattern characters stay.
  if (/^[\x00-\x7f]*$/.test(text)) return text.toLowerCase();
  let out = '';
  for (const ch of text) out += (ch.codePointAt(0) ?? 0) < 0x80 ? ch.toLowerCase() : emit(foldChars(ch));
  return out;
}

/** Fold a normalised path (or a glob pattern, whose `*` pass through) to its case-folded spelling. */
export function foldPath(p: string): string {
  let out = '';
  let last = 0;
  for (const m of p.matchAll(ESCAPE_RUN)) {
    out += foldLiteral(p.slice(last, m.index)) + foldEscapes(m[0]);
    last = (m.index ?? 0) + m[0].length;
  }
  return out + foldLiteral(p.slice(last));
}
