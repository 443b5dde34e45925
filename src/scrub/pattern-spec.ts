/** The shape of a token pattern, apart from its compiler (patterns.ts) so the data file (builtin-patterns.ts) needs no import of the compiler. */

/** Post-match checks that a regex alone cannot express in RE2 (no lookahead). Closed set. */
export type PatternCheck =
  /** Upper, lower, digit, and a letter outside a-f: random base64, not a hex hash or a word. */
  | 'mixed-alnum-not-hex'
  /** At least one digit: keeps identifiers such as `s.AcceptanceTimeoutSeconds`. */
  | 'has-digit';

export interface PatternSpec {
  /** Lower-case id; appears in the marker `[REDACTED:<id>]` and in redaction reports. */
  id: string;
  /** RE2 syntax (Go regexp). */
  regex: string;
  /** Extra flags: any of `i`, `m`, `s`. */
  flags?: string;
  /** Group whose text is redacted: 0 = whole match. Default: the first non-empty group, else the
   * whole match (gitleaks' rule), so keyword context like `api_key = ` stays readable. */
  secretGroup?: number;
  /** Minimum Shannon entropy (bits per byte) of the redacted text; below it the match is left
   * alone. This is what keeps placeholders such as `AKCpXXXXXXXX…` from being redacted. */
  minEntropy?: number;
  check?: PatternCheck;
  /** Prefilter (gitleaks' idea): the regex runs only on text containing one of these, compared
   * case-insensitively. Each must occur inside every match. Without keywords the regex runs on
   * every window, which costs throughput, not correctness. */
  keywords?: readonly string[];
  /** Block pattern: the end marker. */
  end?: string;
  /** Block pattern: bytes after the begin marker that must pass before an `end` counts (gitleaks
   * requires 64 for private keys, so `BEGIN…anything…END` placeholders are not redacted). */
  minBody?: number;
  /** Block pattern: cap on the bytes dropped for one block (default 64 KiB). */
  maxLength?: number;
}
