/**
 * The public smuggling corpus (test/fixtures/corpora/smuggling_cases.json) and how its cases are
 * adapted to a running Turret. Adaptation rules (docs/security.md, "Malformed HTTP and smuggling"):
 *
 * - Only the header section of the FIRST message changes; the framing bytes (request line
 *   spacing, line endings, Content-Length / Transfer-Encoding lines, chunks, bodies, anything
 *   pipelined after the head) are kept byte for byte.
 * - `allowed.example` / `denied.example` become `allowed.turret.test` / `denied.turret.test`
 *   (both resolve to the recording upstream on 127.0.0.1; only "allowed" is allowed by the
 *   rules, so anything forwarded for "denied" would be caught), and gain the upstream's port
 *   when they carry none. `PROXYPORT` becomes Turret's port.
 * - Origin-form requests from the llhttp, http-garden and smuggler sources (whose point is the
 *   framing, not the request-target) become absolute-form to the upstream, and their Host values
 *   are replaced by the upstream authority (a Host is added when an HTTP/1.1 head has none).
 *   Curated request-target and CONNECT cases keep their target form: that is their point.
 * - `Proxy-Authorization` (the agent's credential) and `X-Case: <id>` are inserted just before
 *   the blank line that ends the first head, so a malformed first header line stays the first
 *   header line. A case without a CRLF CRLF head end, or whose request line cannot be read,
 *   is sent exactly as published (it then has no credential, and must still be refused as
 *   malformed, never with 407).
 *   A case that carries its own Proxy-Authorization gets the agent's value in its place.
 * - Inside an intercepted tunnel absolute-form targets to the upstream become origin-form and Host
 *   the tunnel authority; no credential is needed there.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CORPUS_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/corpora/smuggling_cases.json');

export interface CorpusCase {
  id: string;
  source: string;
  category: string;
  bytes: Buffer;
  expect: string | null;
  node20: string;
  llhttpType: string | null;
  llhttpVerdict: string | null;
}

interface RawCase {
  id: string;
  source: string;
  category: string;
  bytes_b64: string;
  expect?: string | null;
  node20?: string | null;
  llhttp_type?: string;
  llhttp_verdict?: string;
}

export function loadCorpus(file = CORPUS_FILE): CorpusCase[] {
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { cases: RawCase[] };
  return doc.cases.map((c) => ({
    id: c.id,
    source: c.source,
    category: c.category,
    bytes: Buffer.from(c.bytes_b64, 'base64'),
    expect: c.expect ?? null,
    node20: c.node20 ?? '',
    llhttpType: c.llhttp_type ?? null,
    llhttpVerdict: c.llhttp_verdict ?? null,
  }));
}

/** RS-* and llhttp response cases are served by the upstream; everything else is a request. */
export function isResponseCase(c: CorpusCase): boolean {
  return c.id.startsWith('RS-') || c.llhttpType === 'response';
}

/**
 * Must Turret refuse it as malformed (400/414/431 or close, nothing upstream)? The corpus says
 * so for its "reject …" expectations; llhttp cases have no expectation, so a strict parse error
 * in stock Node (before any request reached application code) counts as one.
 */
export function mustReject(c: CorpusCase): boolean {
  if (c.expect !== null) return /^reject\b/i.test(c.expect);
  return c.node20.startsWith('PARSE-ERROR') && !c.node20.includes('REQUEST ');
}

/** The bytes end inside a message (Node saw EOF mid-body): no proxy can answer before the client gives up. */
export function incomplete(c: CorpusCase): boolean {
  return c.node20.includes('HPE_INVALID_EOF_STATE');
}

export interface AdaptOptions {
  mode: 'proxy' | 'tunnel';
  /** Port the renamed hosts get when they carry none (the upstream's). */
  upstreamPort: number;
  /** Port an `https://` absolute-form target gets (the TLS upstream's). */
  tlsPort: number;
  proxyPort: number;
  /** Proxy-Authorization value (proxy mode). */
  auth: string;
}

export interface Adapted {
  bytes: Buffer;
  /** False when the case is sent exactly as published. */
  adapted: boolean;
  /** Method of the first request line, when one could be read. */
  method: string | null;
}

const KEEP_TARGET = new Set(['request-target', 'connect']);
const ALLOWED = 'allowed.turret.test';

/** allowed/denied.example → *.turret.test, with `:port` added where none is given (null: never). */
function rename(text: string, port: number | null): string {
  return text.replace(/\b(allowed|denied)\.example(\.?)(:[0-9]*)?(?![A-Za-z0-9-])/gi, (m: string, name: string, dot: string, p: string | undefined) => {
    const base = `${name}.turret.test`;
    const cased = m === m.toUpperCase() ? base.toUpperCase() : base;
    return `${cased}${dot}${p ?? (port === null ? '' : `:${port}`)}`;
  });
}

export function adaptRequest(c: CorpusCase, o: AdaptOptions): Adapted {
  const s = c.bytes.toString('latin1').replaceAll('PROXYPORT', String(o.proxyPort));
  const lead = /^(\r\n)*/.exec(s)?.[0] ?? '';
  const lineEnd = s.indexOf('\r\n', lead.length);
  const headEnd = s.indexOf('\r\n\r\n', lead.length);
  const line = lineEnd < 0 ? '' : s.slice(lead.length, lineEnd);
  const m = /^(\S+)( +)(\S+)( +)([A-Z]+\/\S*)$/.exec(line);
  if (!m || headEnd < 0 || lineEnd > headEnd) {
    return { bytes: Buffer.from(s, 'latin1'), adapted: false, method: /^[A-Za-z]+/.exec(s.slice(lead.length))?.[0] ?? null };
  }
  const [, method = '', sp1 = ' ', target = '', sp2 = ' ', version = ''] = m;
  const authority = `${ALLOWED}:${o.upstreamPort}`;
  let fields = s.slice(lineEnd + 2, headEnd + 2); // header lines, each with its CRLF
  // A CONNECT target without a port (CO-02) must stay without one: that is the case's point.
  const port = c.category === 'connect' ? null : o.upstreamPort;
  let newTarget = rename(target, /^https:/i.test(target) ? o.tlsPort : port);
  const absolute = /^https?:\/\/(allowed|denied)\.turret\.test[^/]*(\/.*)?$/i.exec(newTarget);
  const convert = !KEEP_TARGET.has(c.category) && method !== 'CONNECT' && (target.startsWith('/') || (o.mode === 'tunnel' && absolute !== null));
  if (convert) {
    if (o.mode === 'proxy') newTarget = `http://${authority}${target}`;
    else newTarget = target.startsWith('/') ? target : (absolute?.[2] ?? '/');
    let hosts = 0;
    // Curated cases keep their Host lines (renamed): duplicate, NUL, userinfo … are their point.
    if (c.source === 'curated') fields = rename(fields, o.upstreamPort);
    // Only the leading host[:port] of a Host value is replaced: "google.com\0.evil" keeps its NUL.
    else {
      fields = fields.replace(/(^|\r\n)(host:[ \t]*)[A-Za-z0-9.-]*(:[0-9]*)?/gi, (_all, pre: string, name: string) => {
        hosts++;
        return `${pre}${name}${authority}`;
      });
    }
    if (hosts === 0 && version === 'HTTP/1.1' && !/(^|\r\n)host:/i.test(fields)) fields += `Host: ${authority}\r\n`;
  } else {
    fields = rename(fields, port);
  }
  // A case with its own Proxy-Authorization (HB-07) gets the agent's credential in its place.
  let authorised = false;
  if (o.mode === 'proxy') {
    fields = fields.replace(/(^|\r\n)(proxy-authorization:[ \t]*)[^\r\n]*/gi, (_all, pre: string, name: string) => {
      authorised = true;
      return `${pre}${name}${o.auth}`;
    });
  }
  const inserted = `${o.mode === 'proxy' && !authorised ? `Proxy-Authorization: ${o.auth}\r\n` : ''}X-Case: ${c.id}\r\n`;
  const out = `${lead}${method}${sp1}${newTarget}${sp2}${version}\r\n${fields}${inserted}${s.slice(headEnd + 2)}`;
  return { bytes: Buffer.from(out, 'latin1'), adapted: true, method };
}

/**
 * Token-shaped strings in a response case, to check the scrubber: GitHub classic tokens and
 * Anthropic keys in their real formats. RS-17's "sk-proj-…T3BlbkFJabcdefgh" is not counted: it is
 * far shorter than an OpenAI project key (58 or 74 characters on each side of T3BlbkFJ), so no
 * pattern library built from real formats (gitleaks) treats it as one.
 */
export const TOKEN_SHAPES = /ghp_[A-Za-z0-9]{36}|sk-ant-api03-[A-Za-z0-9_-]{20,}/g;
