/**
 * Every case of the public smuggling corpus (test/fixtures/corpora, 2,117 cases) against the real
 * turret process, over raw sockets, with a raw recording upstream (test/helpers/raw-upstream.ts).
 * How cases are adapted is in test/helpers/smuggling-corpus.ts and docs/security.md.
 *
 * For every request case: what the client gets parses as a sequence of canonical responses; a
 * turret refusal of malformed input (400/414/431) is the last thing on the connection, which
 * closes; a case the corpus says must be rejected gets 400/414/431 (or a close) and NOT ONE BYTE
 * reaches the upstream; whatever does reach the upstream is one canonical request per connection
 * (one Host, at most one Content-Length, chunked only as the single coding, never both, no
 * obs-fold, no bare CR/LF, framing that matches the bytes received, nothing after it).
 * Response cases are served by the upstream: the client gets one well-formed response or a 502.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { header, parseMessage, parseResponses } from '../helpers/http-wire.js';
import { OK_CLOSE, startRawUpstream, type RawUpstream, type UpstreamConn } from '../helpers/raw-upstream.js';
import { pool, replayInTunnel, replayPlain, type Replayed } from '../helpers/replay.js';
import { adaptRequest, incomplete, isResponseCase, loadCorpus, mustReject, TOKEN_SHAPES, type CorpusCase } from '../helpers/smuggling-corpus.js';
import { startTurret, type TurretProc } from '../helpers/turret.js';
import { SPECIAL, type Verdict } from '../helpers/smuggling-expect.js';
import { LOOPBACK } from '../helpers/rules.js';

const TOKEN = `fake-smuggle-${randomBytes(8).toString('hex')}`;
const AUTH = `Basic ${Buffer.from(`smug:${TOKEN}`).toString('base64')}`;
const REJECT = new Set([400, 414, 431]);
/**
 * Bounds per exchange (replay.ts): silence after a keep-alive response, and the hard cap — short
 * for the incomplete messages (their bytes end mid-message: nothing can answer them), generous
 * for everything else so a loaded machine cannot turn a slow answer into a failure.
 */
const QUIET_MS = 250;
const HARD_MS = 10_000;
const INCOMPLETE_HARD_MS = 1_500;
// SMUG_ONLY=ID,ID narrows a run while debugging (the full corpus otherwise); SMUG_DEBUG=ID,ID prints exchanges.
const only = process.env.SMUG_ONLY?.split(',');
const cases = loadCorpus().filter((c) => !only || only.includes(c.id));
const requestCases = cases.filter((c) => !isResponseCase(c));
const responseCases = cases.filter(isResponseCase);
/** The tunnel subset: framing-focused curated cases, every http-garden case, every llhttp request case, every 20th smuggler mutation. */
const TUNNEL_CATEGORIES = new Set(['content-length', 'transfer-encoding', 'chunked', 'line-endings', 'headers', 'cl+te', 'hop-by-hop', 'pipelining', 'method']);
const tunnelCases = requestCases.filter((c, i) => (c.source === 'curated' ? TUNNEL_CATEGORIES.has(c.category) : c.source.startsWith('defparam') ? i % 20 === 0 : true));

/** Problems with a request case's outcome; empty when it is safe. */
function judge(v: Verdict, authorities: string[]): string[] {
  const out: string[] = [];
  const { replay: r } = v;
  // A CONNECT is answered by a head and then TLS (or a close): smuggling-expect.ts judges it.
  if (v.method === 'CONNECT') return [SPECIAL[v.c.id]?.(v, { responses: [], rest: Buffer.alloc(0), problem: null }) ?? null].filter((x): x is string => x !== null);
  const s = parseResponses(r.data, { method: v.method ?? undefined, closed: r.closed });
  if (s.problem) out.push(`client got bytes that are not a response: ${s.problem}`);
  if (s.rest.length > 0 && !r.closed) out.push('an incomplete response was left hanging on an open connection');
  s.responses.forEach((res, i) => {
    const code = header(res, 'x-turret-error')[0];
    if (REJECT.has(res.status)) {
      if (!code) out.push(`${res.status} without X-Turret-Error`);
      if (i !== s.responses.length - 1 || !r.closed) out.push(`connection not closed after ${res.status} ${code ?? ''}`);
    }
  });
  const relayed = s.responses.filter((res) => res.status >= 200 && header(res, 'x-turret-error').length === 0).length;
  if (relayed > v.upstream.filter((c) => c.request).length) out.push(`${relayed} upstream responses for ${v.upstream.length} forwarded requests (smuggled response)`);
  // A case-specific expectation (smuggling-expect.ts) replaces the generic "must reject".
  if (mustReject(v.c) && !SPECIAL[v.c.id]) {
    const first = s.responses.find((res) => res.status >= 200);
    // An incomplete message may have had its head streamed upstream; it can never complete there.
    const reached = v.upstream.filter((c) => !incomplete(v.c) || c.request !== null || c.problem !== null);
    if (reached.length > 0) out.push(`must be rejected, but ${v.upstream.reduce((n, c) => n + c.data.length, 0)} bytes reached the upstream`);
    if (first ? !REJECT.has(first.status) : !r.closed && !incomplete(v.c)) out.push(`must be rejected, got ${first ? first.status : r.timedOut ? 'a timeout' : 'nothing'}`);
  }
  for (const c of v.upstream) {
    if (c.problem) out.push(`upstream got a malformed request: ${c.problem}`);
    else if (!c.request && !incomplete(v.c)) out.push(`upstream got an incomplete request (${c.data.length} bytes)`);
    if (c.extra.length > 0) out.push(`upstream got ${c.extra.length} bytes after the request: ${JSON.stringify(c.extra.toString('latin1').slice(0, 60))}`);
    if (!c.request) continue;
    if (!authorities.includes(header(c.request, 'host')[0]?.toLowerCase() ?? '')) out.push(`upstream Host ${header(c.request, 'host')[0]} is not the target authority`);
    const ws = header(c.request, 'upgrade')[0]?.toLowerCase() === 'websocket';
    for (const h of ['proxy-authorization', 'proxy-connection', 'te', 'trailer', ...(ws ? [] : ['upgrade'])])
      if (header(c.request, h).length > 0) out.push(`hop-by-hop ${h} forwarded`);
  }
  const special = SPECIAL[v.c.id]?.(v, s);
  if (special) out.push(special);
  return out;
}

describe('the smuggling corpus against the real proxy', { timeout: 120_000 }, () => {
  let t: TurretProc;
  let up: RawUpstream;
  let ca: Buffer;
  const bytesOf = new Map(responseCases.map((c) => [c.id, c.bytes]));
  /** Upstream connections since `from` that received bytes, by X-Case. */
  const byCase = (from: number): Map<string, UpstreamConn[]> => {
    const m = new Map<string, UpstreamConn[]>();
    for (const c of up.conns.slice(from).filter((x) => x.data.length > 0)) m.set(c.caseId ?? '', [...(m.get(c.caseId ?? '') ?? []), c]);
    return m;
  };

  before(async () => {
    up = await startRawUpstream((_req, id) => bytesOf.get(id ?? '') ?? OK_CLOSE);
    t = await startTurret({
      env: { SMUG_TOKEN: TOKEN },
      args: ['--limit', 'client_headers_timeout=2s'],
      rules: {
        'smuggling.yaml': {
          agents: [{ name: 'smug', token: { env: 'SMUG_TOKEN' } }],
          rules: [{ name: 'upstream', methods: ['any'], schemes: ['http', 'https'], hosts: ['allowed.turret.test:*'], unsafe_addresses: LOOPBACK }],
          local: ['allowed.turret.test', 'denied.turret.test'],
        },
      },
    });
    ca = readFileSync(path.join(t.caDir, 'ca.crt'));
  });
  after(async () => {
    if (process.env.SMUG_DEBUG) console.log(t?.auditText(), t?.stderr().slice(-3000));
    await t?.stop();
    await up?.close();
  });

  async function run(list: CorpusCase[], mode: 'proxy' | 'tunnel'): Promise<Array<{ c: CorpusCase; problems: string[]; v: Verdict }>> {
    const port = mode === 'proxy' ? up.port : up.tlsPort;
    const authority = `allowed.turret.test:${port}`;
    const authorities = [authority, `allowed.turret.test:${up.tlsPort}`];
    const from = up.conns.length;
    const sent = await pool(list, mode === 'proxy' ? 48 : 24, async (c) => {
      const a = adaptRequest(c, { mode, upstreamPort: port, tlsPort: up.tlsPort, proxyPort: t.port, auth: AUTH });
      const o = { method: a.method ?? undefined, quietMs: QUIET_MS, hardMs: incomplete(c) ? INCOMPLETE_HARD_MS : HARD_MS };
      const replay: Replayed = mode === 'proxy' ? await replayPlain(t.port, a.bytes, o) : await replayInTunnel(t.port, authority, AUTH, ca, a.bytes, o);
      return { c, a, replay };
    });
    await up.settled();
    const conns = byCase(from);
    return sent.map(({ c, a, replay }) => {
      const v: Verdict = { c, adapted: a.adapted, method: a.method, replay, upstream: conns.get(c.id) ?? [] };
      if (process.env.SMUG_DEBUG?.split(',').includes(c.id))
        console.log(
          c.id,
          JSON.stringify(a.bytes.toString('latin1')),
          '\n=>',
          JSON.stringify(replay.data.toString('latin1')),
          replay,
          '\nupstream:',
          v.upstream.map((x) => JSON.stringify(x.data.toString('latin1'))),
        );
      return { c, v, problems: judge(v, authorities) };
    });
  }

  function timing(results: Array<{ v: Verdict }>): string {
    const ms = results.map((r) => r.v.replay.ms).sort((a, b) => a - b);
    return `per case: median ${ms[Math.floor(ms.length / 2)]} ms, max ${ms.at(-1)} ms, ${results.filter((r) => r.v.replay.timedOut).length} ran into their bound, ${results.filter((r) => r.v.replay.ms >= QUIET_MS).length} waited for quiet`;
  }

  /** First-answer statuses and upstream framing, for docs/security.md. */
  function breakdown(results: Array<{ c: CorpusCase; v: Verdict }>): string {
    const count = (xs: string[]): string => JSON.stringify(Object.fromEntries([...new Set(xs)].sort().map((k) => [k, xs.filter((x) => x === k).length])));
    const first = results.map((r) =>
      String(
        parseResponses(r.v.replay.data, { method: r.v.method ?? undefined, closed: r.v.replay.closed }).responses.find((x) => x.status >= 200)?.status ??
          (r.v.replay.closed ? 'closed' : 'none'),
      ),
    );
    const framing = results.flatMap((r) => r.v.upstream.flatMap((c) => (c.request ? [c.request.framing] : ['incomplete'])));
    const capped = results.filter((r) => r.v.replay.timedOut).map((r) => r.c.id);
    const odd = results.filter((_r, i) => first[i] === '407').map((r) => r.c.id);
    return `first answer: ${count(first)} (407: ${odd.join(' ')}); upstream framing: ${count(framing)}; no answer within the bound (incomplete messages): ${capped.join(' ')}`;
  }

  function report(results: Array<{ c: CorpusCase; problems: string[] }>): string {
    const bad = results.filter((r) => r.problems.length > 0);
    return `${bad.length} unsafe outcomes:\n${bad
      .slice(0, 40)
      .map((r) => `  ${r.c.id}: ${r.problems.join('; ')}`)
      .join('\n')}`;
  }

  it(`replays all ${requestCases.length} request cases as plain proxy requests: rejected cases reach nothing, forwarded ones are re-serialised`, async (ctx) => {
    const started = Date.now();
    const results = await run(requestCases, 'proxy');
    const stray = up.conns.filter((c) => c.data.length > 0 && !requestCases.some((x) => x.id === c.caseId) && !bytesOf.has(c.caseId ?? ''));
    assert.deepEqual(
      stray.map((c) => c.data.toString('latin1').slice(0, 80)),
      [],
      'upstream connections no case accounts for (smuggled requests)',
    );
    const rejected = results.filter((r) => {
      const first = parseResponses(r.v.replay.data, { closed: r.v.replay.closed }).responses.find((x) => x.status >= 200);
      return r.v.upstream.length === 0 && (first ? REJECT.has(first.status) : r.v.replay.closed);
    }).length;
    const forwarded = results.filter((r) => r.v.upstream.some((c) => c.request)).length;
    ctx.diagnostic(timing(results));
    ctx.diagnostic(breakdown(results));
    ctx.diagnostic(
      `${results.length} request cases in ${Date.now() - started} ms: ${rejected} rejected as malformed, ${forwarded} forwarded re-serialised, ${results.length - rejected - forwarded} refused otherwise (403/407/421/…); must-reject: ${results.filter((r) => mustReject(r.c)).length}; sent as published: ${results.filter((r) => !r.v.adapted).length}`,
    );
    assert.equal(results.filter((r) => r.problems.length > 0).length, 0, report(results));
    if (!only) assert.ok(forwarded > 60, `only ${forwarded} cases were forwarded: the adaptation is broken`);
  });

  it(`replays ${tunnelCases.length} framing cases inside an intercepted CONNECT tunnel`, async (ctx) => {
    const results = await run(tunnelCases, 'tunnel');
    const forwarded = results.filter((r) => r.v.upstream.some((c) => c.request)).length;
    ctx.diagnostic(breakdown(results));
    ctx.diagnostic(`${timing(results)}; ${results.length} tunnel cases: ${forwarded} forwarded, ${results.filter((r) => r.v.upstream.length === 0).length} reached nothing`);
    assert.equal(results.filter((r) => r.problems.length > 0).length, 0, report(results));
    if (!only) assert.ok(forwarded > 30, `only ${forwarded} tunnel cases were forwarded`);
  });

  it(`serves all ${responseCases.length} response cases from the upstream: one well-formed response or a 502, never a second one`, async () => {
    let checkedTokens = 0;
    const results = await pool(responseCases, 24, async (c) => {
      const req = `GET http://allowed.turret.test:${up.port}/rs HTTP/1.1\r\nHost: allowed.turret.test:${up.port}\r\nProxy-Authorization: ${AUTH}\r\nX-Case: ${c.id}\r\nConnection: close\r\n\r\n`;
      const r = await replayPlain(t.port, Buffer.from(req, 'latin1'), { method: 'GET' });
      const s = parseResponses(r.data, { method: 'GET', closed: r.closed });
      const problems: string[] = [];
      if (s.problem) problems.push(`client got bytes that are not a response: ${s.problem}`);
      const finals = s.responses.filter((x) => x.status >= 200);
      if (finals.length > 1) problems.push(`${finals.length} responses to one request`);
      if ((finals.length === 0 || s.rest.length > 0) && !r.closed) problems.push('an incomplete response on an open connection');
      const f = finals[0];
      if (f?.status === 502 && header(f, 'x-turret-error').length === 0) problems.push('502 without X-Turret-Error');
      // Tokens in the served bytes (and in a gzip body) must not reach the client, decoded or not.
      const served = [c.bytes.toString('latin1')];
      // De-chunked too: a token split across chunks (RS-13, RS-17) is one token to the client.
      const whole = parseMessage(c.bytes, { kind: 'response', method: 'GET', closed: true });
      if (whole.state === 'complete') served.push(whole.msg.body.toString('latin1'));
      const gz = c.bytes.indexOf(Buffer.from([0x1f, 0x8b]));
      if (gz >= 0) served.push(zlib.gunzipSync(c.bytes.subarray(gz), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('latin1'));
      const got = r.data.toString('latin1') + (f ? f.body.toString('latin1') : '');
      const tokens = served.flatMap((x) => x.match(TOKEN_SHAPES) ?? []);
      checkedTokens += tokens.length;
      for (const tok of tokens) if (got.includes(tok)) problems.push(`token ${tok.slice(0, 8)}… reached the client`);
      const special = SPECIAL[c.id]?.({ c, adapted: true, method: 'GET', replay: r, upstream: [] }, s);
      if (special) problems.push(special);
      return { c, problems };
    });
    assert.equal(results.filter((r) => r.problems.length > 0).length, 0, report(results));
    if (!only) assert.ok(checkedTokens >= 3, `only ${checkedTokens} served tokens were looked for`);
  });

  it('leaves an audit record for every refusal of malformed input', async () => {
    const audit = t.audit();
    const malformed = audit.filter((r) => r.outcome === 'denied' && ['bad_request', 'bad_target', 'headers_too_large'].includes(String(r.code)));
    if (!only) assert.ok(malformed.length > 1_000, `only ${malformed.length} audit records for malformed requests`);
    assert.ok(!t.auditText().includes(TOKEN), 'the agent credential appears in the audit log');
  });
});
