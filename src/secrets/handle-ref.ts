/**
 * Handles never reach the audit log, Turret's logs or metrics verbatim (a refused request's path
 * `/x/trt_…`, a reason quoting a header): a handle is a bearer credential for as long as it lives,
 * and whoever reads the logs must not be able to use it. It is replaced by a stable reference:
 *
 *   `[handle:<id>]`             a handle Turret can open: its 128-bit id, the one `turret handle
 *                               list` shows and `turret handle revoke ID` takes;
 *   `[handle:unknown:<fp>]`     anything handle-shaped Turret cannot open (forged, another key):
 *                               a keyed fingerprint, so equal strings correlate without being
 *                               recoverable.
 *
 * Percent-encoded spellings (`trt%5F…`, `%74rt_…`) are found too: runs of escapes are decoded
 * before looking, and the whole encoded run is replaced.
 */
import { HANDLE_RE } from '../core/handle-shape.js';
import { openHandle } from './handles.js';
import { fingerprint, type KeyRing } from './keys.js';

/** A handle or its percent-encoded spelling: base64url characters and escapes, long enough. */
const ENCODED_RUN = /(?:[A-Za-z0-9_-]|%[0-9A-Fa-f]{2}){44,}/g;

export function handleReference(ring: KeyRing, handle: string): string {
  const c = openHandle(ring, handle);
  return c ? `[handle:${c.id}]` : `[handle:unknown:${fingerprint(ring, handle)}]`;
}

/** Replace every handle in `text` by its reference; text without one is returned as is. */
export function referHandles(ring: KeyRing, text: string): string {
  let out = text.includes('trt_') ? text.replace(HANDLE_RE, (h) => handleReference(ring, h)) : text;
  if (out.includes('%')) {
    out = out.replace(ENCODED_RUN, (run) => {
      if (!run.includes('%')) return run;
      let decoded: string;
      try {
        decoded = decodeURIComponent(run);
      } catch {
        return run;
      }
      return new RegExp(HANDLE_RE.source).test(decoded) ? decoded.replace(HANDLE_RE, (h) => handleReference(ring, h)) : run;
    });
  }
  return out;
}
