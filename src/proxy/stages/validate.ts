/**
 * validate: the first stage. Node's strict llhttp parser (Node 20, `insecureHTTPParser: false`)
 * already refuses most malformed input before any of our code runs — duplicate or non-numeric
 * Content-Length, Content-Length beside Transfer-Encoding, obs-fold, bare CR/LF, invalid field
 * names, NUL and other controls in values, bad chunk sizes. What it hands over anyway, and a
 * proxy must not pass on (measured with the public smuggling corpus, docs/security.md):
 *
 * - versions other than HTTP/1.0 and 1.1 (llhttp accepts "HTTP/2.0" and HTTP/0.9 lines);
 * - Transfer-Encoding in HTTP/1.0 (RFC 9112 §6.1: the framing is faulty), or any coding list
 *   other than exactly "chunked" (",chunked", "gzip, chunked": Turret decodes the chunks and
 *   re-frames, so any other coding would be silently dropped — refuse instead of guess);
 * - no Host in HTTP/1.1, or more than one (RFC 9112 §3.2; Node exposes only the first);
 * - more than 1,000 fields: Node's default maxHeadersCount (2000 = names + values) silently drops
 *   the rest from req.headers, which identify, policy and injection read — while rawHeaders, which
 *   headers.ts re-serialises, keeps up to the next batch of 32 (Node 20.20: 1,023 for 3,000 sent).
 *
 * Every refusal is 400 bad_request (431 for the field count), answered with Connection: close
 * by respond.ts and audited by finish.ts. This stage runs before identify: a malformed request
 * is refused as malformed whoever sends it.
 *
 * The parser can also fail in the BODY of a request whose head was fine (a bad chunk size).
 * Node emits 'request' when the head is complete and reports the body error to 'clientError'
 * later: llhttp runs in C++ and calls into JS once per event, so the pipeline's promises run
 * between the head and the error even for bytes that arrived in one segment. server.ts marks
 * every unfinished exchange on that connection as malformed (`Exchange.malformed`, found through
 * the connection's open requests, listen/connection.ts) and answers it 400; the forward stage
 * yields one macrotask (setImmediate: the rest of that segment has been parsed by then) and
 * checks the mark before it dials, so such a request never reaches an upstream. A body that
 * fails in a later segment, while it already streams upstream, is aborted there instead.
 */
import type { ClientRequest } from './exchange.js';
import { TurretError } from '../../core/errors.js';

/** Fields req.headers holds with Node's default `maxHeadersCount` (2000 entries); more are dropped. */
export const MAX_HEADER_FIELDS = 1000;

export const MALFORMED_REASON = 'the request is not valid HTTP/1.1';

export function validateRequest(req: ClientRequest): void {
  const version = req.httpVersion;
  if (version !== '1.1' && version !== '1.0') throw new TurretError('bad_request', `HTTP/${version.slice(0, 10)} is not supported here (HTTP/1.1 or HTTP/1.0)`);
  if (req.rawHeaders.length / 2 > MAX_HEADER_FIELDS) throw new TurretError('headers_too_large', `a request may carry at most ${MAX_HEADER_FIELDS} header fields`);
  let hosts = 0;
  const codings: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = (req.rawHeaders[i] ?? '').toLowerCase();
    if (name === 'host') hosts++;
    else if (name === 'transfer-encoding') codings.push(...(req.rawHeaders[i + 1] ?? '').split(',').map((t) => t.trim().toLowerCase()));
  }
  if (hosts > 1) throw new TurretError('bad_request', 'the request has more than one Host header');
  if (hosts === 0 && version === '1.1') throw new TurretError('bad_request', 'an HTTP/1.1 request needs a Host header');
  if (codings.length > 0) {
    if (version === '1.0') throw new TurretError('bad_request', 'Transfer-Encoding is not allowed in an HTTP/1.0 request');
    if (codings.length !== 1 || codings[0] !== 'chunked') throw new TurretError('bad_request', 'the only Transfer-Encoding accepted is "chunked"');
    if (req.headers['content-length'] !== undefined) throw new TurretError('bad_request', 'Transfer-Encoding and Content-Length together');
  }
}
