/**
 * Case-specific expectations for the smuggling corpus, beyond the generic rules every case is
 * held to (smuggling.test.ts). These are the cases the corpus marks as "accept", "deny", or
 * "either", and the response cases with a required answer. Each returns a problem or null.
 */
import type { ResponseStream, WireMessage } from './http-wire.js';
import { header } from './http-wire.js';
import type { UpstreamConn } from './raw-upstream.js';
import type { Replayed } from './replay.js';
import type { CorpusCase } from './smuggling-corpus.js';

export interface Verdict {
  c: CorpusCase;
  adapted: boolean;
  method: string | null;
  replay: Replayed;
  /** Upstream connections attributed to this case. */
  upstream: UpstreamConn[];
}

type Check = (v: Verdict, s: ResponseStream) => string | null;

const final = (s: ResponseStream): WireMessage | undefined => s.responses.find((r) => r.status >= 200);
const req = (v: Verdict): WireMessage | null => v.upstream[0]?.request ?? null;

/** Forwarded exactly once, and `check` holds for what the upstream got. */
const forwarded =
  (check: (r: WireMessage) => string | null = () => null): Check =>
  (v) => {
    const r = req(v);
    if (!r || v.upstream.length !== 1) return `expected one forwarded request, upstream got ${v.upstream.length}`;
    return check(r);
  };

/** Answered with one of `statuses` by Turret, nothing forwarded. */
const refused =
  (...statuses: number[]): Check =>
  (v, s) => {
    const f = final(s);
    if (v.upstream.length > 0) return 'forwarded, but must be refused';
    if (!f || !statuses.includes(f.status)) return `expected ${statuses.join('/')}, got ${f?.status ?? 'nothing'}`;
    return null;
  };

const either =
  (a: Check, b: Check): Check =>
  (v, s) => {
    const x = a(v, s);
    return x === null ? null : b(v, s) === null ? null : x;
  };

const body = (want: string, length?: string) => (r: WireMessage) => {
  if (r.body.toString('latin1') !== want) return `upstream body ${JSON.stringify(r.body.toString('latin1'))}, want ${JSON.stringify(want)}`;
  if (length !== undefined && header(r, 'content-length')[0] !== length) return `upstream Content-Length ${header(r, 'content-length')[0]}, want ${length}`;
  return null;
};

/** The CONNECT itself: status of the first response, and nothing ever reaches the upstream. */
const connect =
  (...statuses: number[]): Check =>
  (v) => {
    const m = /^HTTP\/1\.1 (\d{3})/.exec(v.replay.data.toString('latin1'));
    if (v.upstream.length > 0) return 'tunnel bytes reached the upstream';
    return m && statuses.includes(Number(m[1])) ? null : `CONNECT answered ${m?.[1] ?? 'nothing'}, want ${statuses.join('/')}`;
  };

const status502: Check = (_v, s) => (final(s)?.status === 502 ? null : `want 502, got ${final(s)?.status ?? 'nothing'}`);

export const SPECIAL: Record<string, Check> = {
  // content-length: accepted ones are re-framed with one canonical Content-Length.
  'CL-02': either(refused(400), forwarded(body('hello', '5'))),
  'CL-03': either(refused(400), forwarded(body('hello', '5'))),
  'CL-08': forwarded(body('0123456789', '10')),
  'CL-17': forwarded(body('1234567890', '10')),
  // "Transfer_Encoding" is another field name: framed by Content-Length, never chunked.
  'TE-16': forwarded((r) => body('0\r\n\r\nG', '6')(r) ?? (header(r, 'transfer-encoding').length > 0 ? 'chunked upstream' : null)),
  'CH-14': either(
    refused(400),
    forwarded((r) => (r.trailers.length > 0 ? 'trailers forwarded' : null)),
  ),
  'CH-15': forwarded((r) => (r.trailers.length > 0 ? 'trailers forwarded' : null)),
  // obs-text in a value passes unchanged, byte for byte.
  'HD-10': forwarded((r) => (header(r, 'x')[0] === '\xffvalue\xff' ? null : `X became ${JSON.stringify(header(r, 'x')[0])}`)),
  'HD-15': either(refused(431), forwarded()),
  'HD-16': refused(431),
  'HD-17': refused(414, 431, 400),
  'LE-09': forwarded(),
  'LE-11': either(refused(400), forwarded()),
  // Routing is on the target only; Host is regenerated from it (RFC 9112 §3.2.2).
  'RT-01': forwarded((r) => (header(r, 'host')[0]?.startsWith('allowed.turret.test:') ? null : `upstream Host ${header(r, 'host')[0]}`)),
  'RT-02': refused(400, 403),
  'RT-03': refused(400),
  'RT-04': refused(400),
  'RT-06': refused(400, 403),
  'RT-09': refused(400, 403, 502),
  'RT-10': refused(403, 400),
  'RT-11': refused(403, 400),
  'RT-12': refused(403, 400),
  'RT-13': refused(400),
  'RT-14': refused(400),
  'RT-16': refused(400),
  'RT-18': refused(403, 400),
  'RT-20': forwarded(),
  'RT-21': forwarded(),
  'MV-01': refused(403, 405),
  'MV-05': refused(400, 505),
  'MV-07': refused(400),
  'HB-01': either(refused(400), forwarded(body('hello', '5'))),
  'HB-02': either(refused(400), forwarded(body(''))),
  'HB-03': forwarded(),
  'HB-05': refused(400),
  'HB-07': forwarded(),
  'HB-09': refused(403, 405),
  // Pipelined: the first request is forwarded, the second (to the denied host) is not.
  'HB-10': forwarded((r) => (r.startLine.startsWith('GET / ') ? null : `forwarded ${r.startLine}`)),
  'CO-01': connect(200),
  'CO-02': connect(400),
  'CO-03': connect(200, 400),
  'CO-04': connect(403),
  ...Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`CO-${String(i + 5).padStart(2, '0')}`, connect(403, 400)])),
  ...Object.fromEntries(['CO-20', 'CO-21', 'CO-22', 'CO-23', 'CO-24', 'CO-25', 'CO-26', 'CO-27', 'CO-29', 'CO-32', 'CO-33'].map((id) => [id, connect(400)])),
  // "host:443  HTTP/1.1": llhttp hands over the target without the extra space, so Turret sees
  // a well-formed authority; only TLS can follow, so nothing ambiguous is ever forwarded.
  'CO-28': connect(200, 400),
  'CO-30': connect(200, 400),
  'CO-31': connect(200),
  'CO-34': connect(200, 400),
  'CO-35': connect(200),
  'CO-36': connect(200),
  'CO-38': connect(200),
  // Response side.
  'RS-01': status502,
  'RS-02': status502,
  'RS-06': status502,
  'RS-07': status502,
  'RS-10': status502,
  'RS-11': (_v, s) => (final(s) && final(s)?.status !== 502 ? `a complete ${final(s)?.status} for a truncated body` : null),
  'RS-08': (_v, s) => (s.responses.some((r) => r.status === 200) ? 'the bytes after the 204 became a response' : null),
};
