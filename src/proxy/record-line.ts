/**
 * The one filter for every line that leaves Turret as a record: audit records, log lines and the
 * console's feed (cli/start.ts, runtime.ts). Handles are replaced by their references first
 * (secrets/handle-ref.ts), then secrets are scrubbed from what is left.
 *
 * The order matters: a forged handle (or its percent-encoded spelling) can hold a run a token
 * pattern matches (40 mixed alphanumerics between `_`/`-` look like an AWS secret key). Scrubbing
 * first would redact that run and leave the rest of the handle behind, no longer handle-shaped,
 * so it would neither get its reference nor vanish. Referring first turns the whole handle into
 * a keyed fingerprint, which holds nothing of it.
 */
import { referHandles } from '../secrets/handle-ref.js';
import type { KeyRing } from '../secrets/keys.js';
import type { Scrubber } from '../scrub/scrubber.js';

export function recordLine(ring: KeyRing, scrubber: Scrubber | null, line: string): string {
  const referred = referHandles(ring, line);
  return scrubber ? scrubber.scrubString(referred).text : referred;
}
