/**
 * Handles hidden in an encoding: base64 (standard or URL alphabet, any alignment) and percent
 * encoding (also double). A hidden handle is never substituted — the proxy cannot know what the
 * receiver will decode — so finding one refuses the request; toward an unbound host that is a
 * misuse with its own code (an agent trying to smuggle a handle out).
 *
 * Base64 is found without decoding every blob: "trt_" encodes to one of three fixed strings
 * depending on its alignment (dHJ0X, RydF, 0cnRf, the same in both alphabets); only runs that
 * contain one are decoded, at each of the four offsets.
 */
import { HANDLE_RE } from './handles.js';

export const B64_SIGNATURES = ['dHJ0X', 'RydF', '0cnRf'] as const;
const B64_RUN = /[A-Za-z0-9+/_-]{16,}={0,2}/g;
const PCT_RUN = /(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9._~-])+/g;
const ONE_HANDLE = new RegExp(HANDLE_RE.source);

function pctDecode(s: string): string {
  return s.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
}

function fromBase64Run(run: string): string | null {
  for (let off = 0; off < 4; off++) {
    const decoded = Buffer.from(run.slice(off), 'base64').toString('latin1');
    const m = ONE_HANDLE.exec(decoded);
    if (m) return m[0];
  }
  return null;
}

function fromPercentRun(run: string): string | null {
  let cur = run;
  for (let i = 0; i < 3 && cur.includes('%'); i++) {
    cur = pctDecode(cur);
    const m = ONE_HANDLE.exec(cur);
    if (m && !run.includes(m[0])) return m[0];
  }
  return null;
}

/** B64_SIGNATURES.some((s) => text.includes(s)), without a closure per call (twice per header per request). */
function hasB64Signature(text: string): boolean {
  for (const s of B64_SIGNATURES) if (text.includes(s)) return true;
  return false;
}

/** Handles present only in encoded form in `text` (read as latin1/UTF-16 code units). */
/** Nothing found (nearly every call): one empty list for all, never added to. */
const NO_FINDS: readonly string[] = Object.freeze([]);

export function findEncodedHandles(text: string): readonly string[] {
  // Made at the first find: nearly every text has none (each header of every request is looked at).
  let out: string[] | null = null;
  if (hasB64Signature(text)) {
    for (const m of text.matchAll(B64_RUN)) {
      const run = m[0];
      if (!B64_SIGNATURES.some((s) => run.includes(s))) continue;
      const h = fromBase64Run(run);
      if (h && !text.includes(h)) (out ??= []).push(h);
    }
  }
  if (text.includes('%')) {
    for (const m of text.matchAll(PCT_RUN)) {
      if (!m[0].includes('%')) continue;
      const h = fromPercentRun(m[0]);
      if (h) (out ??= []).push(h);
    }
  }
  return out ?? NO_FINDS;
}
