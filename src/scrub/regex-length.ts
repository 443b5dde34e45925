/**
 * Upper bound, in bytes, of what an RE2 pattern can match. The streaming scrubber must hold back at
 * least this much of a body to be sure a token split across chunks is seen whole, so the bound is
 * computed from the pattern itself rather than trusted from configuration.
 *
 * A small recursive-descent walk over RE2 syntax: literals and classes count 1 char, anything that
 * can match a non-ASCII character (`.`, `\S`, `\W`, `\D`, `[^…]`, `\pN`) counts 4 bytes (longest
 * UTF-8 sequence), groups/alternation take the max, `{n,m}` multiplies, and `*`, `+`, `{n,}` give
 * Infinity. It over-estimates on purpose (a too-large bound only costs memory, a too-small one
 * leaks); it is not a validator — RE2 itself rejects bad syntax at compile time.
 */

const WIDE = 4; // bytes a "match anything" atom may consume in UTF-8

export function maxMatchBytes(source: string): number {
  const p = new Parser(source);
  const n = p.alternation();
  return n;
}

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  alternation(): number {
    let best = this.sequence();
    while (this.s[this.i] === '|') {
      this.i++;
      best = Math.max(best, this.sequence());
    }
    return best;
  }

  private sequence(): number {
    let total = 0;
    while (this.i < this.s.length && this.s[this.i] !== '|' && this.s[this.i] !== ')') {
      const atom = this.atom();
      total += this.quantified(atom);
    }
    return total;
  }

  private atom(): number {
    const c = this.s[this.i];
    if (c === '(') return this.group();
    if (c === '[') return this.charClass();
    if (c === '\\') return this.escape();
    this.i++;
    switch (c) {
      case '^':
      case '$':
        return 0;
      case '.':
        return WIDE;
      default: {
        // A literal; non-ASCII literals take their UTF-8 length.
        const cp = c === undefined ? 0 : (c.codePointAt(0) ?? 0);
        return cp < 0x80 ? 1 : Buffer.byteLength(String.fromCodePoint(cp));
      }
    }
  }

  private group(): number {
    this.i++; // (
    if (this.s[this.i] === '?') {
      this.i++;
      if (this.s[this.i] === 'P' || this.s[this.i] === '<') {
        // (?P<name>…) or (?<name>…)
        const close = this.s.indexOf('>', this.i);
        this.i = close < 0 ? this.s.length : close + 1;
      } else {
        // flags: (?i) (?-i) (?i:…) (?s-i:…)
        while (this.i < this.s.length && /[a-zA-Z-]/.test(this.s[this.i] ?? '')) this.i++;
        if (this.s[this.i] === ')') {
          this.i++;
          return 0; // a bare flag group matches nothing
        }
        if (this.s[this.i] === ':') this.i++;
      }
    }
    const inner = this.alternation();
    if (this.s[this.i] === ')') this.i++;
    return inner;
  }

  private charClass(): number {
    this.i++; // [
    let negated = false;
    if (this.s[this.i] === '^') {
      negated = true;
      this.i++;
    }
    let wide = negated;
    let first = true;
    while (this.i < this.s.length) {
      const c = this.s[this.i];
      if (c === ']' && !first) break;
      first = false;
      if (c === '[' && this.s[this.i + 1] === ':') {
        const close = this.s.indexOf(':]', this.i + 2);
        this.i = close < 0 ? this.s.length : close + 2;
        continue;
      }
      if (c === '\\') {
        const e = this.s[this.i + 1] ?? '';
        if ('SWDpP'.includes(e)) wide = true;
        this.i += e === 'x' && this.s[this.i + 2] === '{' ? this.s.indexOf('}', this.i) - this.i + 1 : 2;
        continue;
      }
      if ((c?.codePointAt(0) ?? 0) >= 0x80) wide = true;
      this.i++;
    }
    this.i++; // ]
    return wide ? WIDE : 1;
  }

  private escape(): number {
    const e = this.s[this.i + 1] ?? '';
    this.i += 2;
    switch (e) {
      case 'b':
      case 'B':
      case 'A':
      case 'z':
        return 0;
      case 'S':
      case 'W':
      case 'D':
      case 'C':
        return WIDE;
      case 'p':
      case 'P':
        if (this.s[this.i] === '{') this.i = this.s.indexOf('}', this.i) + 1;
        else this.i++;
        return WIDE;
      case 'x':
        if (this.s[this.i] === '{') {
          const close = this.s.indexOf('}', this.i);
          const cp = parseInt(this.s.slice(this.i + 1, close), 16);
          this.i = close + 1;
          return cp < 0x80 ? 1 : WIDE;
        }
        this.i += 2;
        return 1;
      case 'Q': {
        const close = this.s.indexOf('\\E', this.i);
        const lit = this.s.slice(this.i, close < 0 ? undefined : close);
        this.i = close < 0 ? this.s.length : close + 2;
        return Buffer.byteLength(lit);
      }
      default:
        return 1;
    }
  }

  private quantified(atom: number): number {
    const c = this.s[this.i];
    let min: number;
    let max: number;
    if (c === '*' || c === '+' || c === '?') {
      this.i++;
      min = c === '+' ? 1 : 0;
      max = c === '?' ? 1 : Infinity;
    } else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i));
      if (!m) return atom; // a literal '{' in RE2
      this.i += m[0].length;
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' || m[3] === undefined ? Infinity : Number(m[3]);
    } else {
      return atom;
    }
    if (this.s[this.i] === '?') this.i++; // lazy: same bound
    void min;
    return atom === 0 ? 0 : atom * max;
  }
}
