/**
 * What a scrubber failure (a WebAssembly trap, a bug) is reported as. The scrubber never passes
 * bytes it could not scan (the stream errors, scrubBuffer throws), and the exchange's one audit
 * record must name the real cause: before this, the proxy's upstream error mapping saw a plain
 * Error (a WebAssembly RuntimeError) and recorded `upstream_connect_failed` for a response the
 * upstream had sent in full. The message of the original error is kept only as the cause (it
 * never reaches the agent or the audit record).
 */
import { TurretError, isTurretError } from '../core/errors.js';

export function scrubFailed(e: unknown): TurretError {
  return isTurretError(e) ? e : new TurretError('internal_error', 'the response scrubber failed; nothing it had not scanned was sent', { cause: e });
}
