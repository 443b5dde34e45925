/**
 * The spellings of one known secret that an upstream may echo back: exact, base64 and base64url
 * (padded and not, and the three alignments inside a longer base64 string such as a Basic
 * credential `user:secret`), percent-encoded (upper- and lower-case hex, `+` for space) and
 * JSON-escaped. Each form is a literal byte string; the scrubber finds them all in one RE2 pass.
 */

/** Base64 fragments shorter than this are not searched: a 12-char run occurs in random base64
 * (images, hashes) about once per 2^72 positions, while 6-8 chars would fire on real data. */
export const MIN_EMBEDDED_BASE64 = 12;

export type SecretForm = 'raw' | 'base64' | 'base64url' | 'base64-embedded' | 'base64url-embedded' | 'percent' | 'json' | 'hex' | 'utf16' | 'html';

export interface Needle {
  /** The form's bytes, as a latin1 string (one char per byte). */
  bytes: string;
  form: SecretForm;
  /** Matched ignoring ASCII case: an upstream that upper-cases a value (or prints hex in either
   * case) must not hand the secret back. Only for forms where case carries no meaning to find. */
  caseless?: boolean;
}

export function secretNeedles(value: string): Needle[] {
  const raw = Buffer.from(value, 'utf8');
  const out = new Map<string, Needle>();
  const add = (s: string, form: SecretForm, caseless = false): void => {
    if (s.length > 0 && !out.has(s)) out.set(s, { bytes: s, form, ...(caseless ? { caseless } : {}) });
  };
  add(raw.toString('latin1'), 'raw', true);
  // Hex dumps (either case) and UTF-16 text (Windows APIs, JSON in UTF-16) of the value: both
  // decode back to the secret in one step (docs/security.md, "Reviewed attacks").
  add(raw.toString('hex'), 'hex', true);
  add(Buffer.from(value, 'utf16le').toString('latin1'), 'utf16');
  add(Buffer.from(value, 'utf16le').swap16().toString('latin1'), 'utf16');

  const b64 = raw.toString('base64');
  add(b64, 'base64');
  add(b64.replace(/=+$/, ''), 'base64');
  const b64u = raw.toString('base64url');
  add(b64u, 'base64url');
  add(b64u + '='.repeat(b64.length - b64u.length), 'base64url'); // padded url-safe, seen in the wild

  for (const k of [0, 1, 2]) {
    const core = embeddedBase64Core(raw, k);
    if (core.length >= MIN_EMBEDDED_BASE64) {
      add(core, 'base64-embedded');
      add(core.replace(/\+/g, '-').replace(/\//g, '_'), 'base64url-embedded');
    }
  }

  const pct = percentEncode(raw, true);
  add(pct, 'percent');
  add(percentEncode(raw, false), 'percent');
  add(pct.replace(/%20/g, '+'), 'percent'); // application/x-www-form-urlencoded
  add(Buffer.from(encodeURIComponent(value), 'latin1').toString('latin1'), 'percent');

  const json = JSON.stringify(value).slice(1, -1);
  add(Buffer.from(json, 'utf8').toString('latin1'), 'json');
  add(Buffer.from(json.replace(/\//g, '\\/'), 'utf8').toString('latin1'), 'json'); // PHP-style \/
  add(asciiJson(json), 'json'); // non-ASCII as \uXXXX
  // Every character as \uXXXX (some serialisers escape everything), either hex case.
  add([...value].map((ch) => `\\u${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`).join(''), 'json', true);

  // HTML: an error page that quotes the request escapes &<>"' — and may escape every character
  // as a numeric reference (decimal or hex), as some template engines do.
  add(
    Buffer.from(
      value.replace(/[&<>"']/g, (c) => HTML[c] ?? c),
      'utf8',
    ).toString('latin1'),
    'html',
  );
  add([...value].map((ch) => `&#${ch.codePointAt(0) ?? 0};`).join(''), 'html');
  add([...value].map((ch) => `&#x${(ch.codePointAt(0) ?? 0).toString(16)};`).join(''), 'html', true);
  return [...out.values()];
}

/**
 * The base64 characters that depend only on the secret when it sits `k` bytes after a 3-byte
 * boundary inside a longer encoded string: the leading characters that mix in the preceding bytes
 * and the trailing one that mixes in the following bytes are cut off.
 */
const HTML: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function embeddedBase64Core(raw: Buffer, k: number): string {
  const padded = Buffer.concat([Buffer.alloc(k), raw]);
  const enc = padded.toString('base64').replace(/=+$/, '');
  const skip = Math.ceil((k * 8) / 6);
  const totalBits = (k + raw.length) * 8;
  const fullChars = Math.floor(totalBits / 6); // chars made only of real bits (no trailing mix)
  return enc.slice(skip, fullChars);
}

function percentEncode(raw: Buffer, upper: boolean): string {
  let s = '';
  for (const b of raw) {
    // RFC 3986 unreserved characters stay literal; everything else is %XX.
    const unreserved = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
    if (unreserved) s += String.fromCharCode(b);
    else {
      const h = b.toString(16).padStart(2, '0');
      s += '%' + (upper ? h.toUpperCase() : h);
    }
  }
  return s;
}

function asciiJson(json: string): string {
  let s = '';
  for (const ch of json) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp < 0x80) s += ch;
    else {
      // JSON escapes astral characters as a surrogate pair, one \uXXXX each.
      for (let i = 0; i < ch.length; i++) s += '\\u' + ch.charCodeAt(i).toString(16).padStart(4, '0');
    }
  }
  return s;
}
