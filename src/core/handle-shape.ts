/**
 * The textual shape of a Turret handle, shared by the code that finds handles in requests
 * (secrets/) and the scrubber, which must never redact a handle: handles are what an agent is
 * meant to hold, and a token pattern firing inside one (a random 40-character base64 run looks
 * like an AWS secret key) would break the agent's credential.
 */
export const HANDLE_PREFIX = 'trt_';
/** Long enough that ordinary words never match. Global: use with matchAll/replace, or copy. */
export const HANDLE_RE = /trt_[A-Za-z0-9_-]{40,}/g;
