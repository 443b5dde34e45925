/**
 * Does dropping http.Server change what a Node relay lets through? The request cases of the
 * smuggling corpus that test/integration/smuggling.test.ts replays inside a tunnel (the same
 * subset and adaptation, test/helpers/smuggling-corpus.ts), replayed inside CONNECT + TLS into
 * the peers relay (bench/peers-relay.ts: http.Server + undici) and the variants of
 * bench/raw-relay.ts, against the raw recording upstream of the tests (test/helpers/raw-upstream.ts:
 * TLS, strict parser, one request per connection, so bytes after a message would be smuggled).
 *
 *   node --import tsx bench/raw-corpus.ts [relay,llhttp-undici,llhttp-raw,hand-raw,server-raw]
 *
 * Per subject: cases refused (400 or a close, and no byte of the case upstream), forwarded
 * (upstream received one valid request and nothing after it), and anything else (the upstream
 * saw an invalid request or extra bytes, or the client got no decision); then the cases where a
 * variant's class differs from the relay's. Neither the relay nor the variants add Turret's
 * validate.ts refusals (docs/security.md), so "forwarded" here is not a Turret outcome. Bounded:
 * every exchange by replay.ts's timers.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseResponses } from '../test/helpers/http-wire.js';
import { startRawUpstream } from '../test/helpers/raw-upstream.js';
import { pool, replayInTunnel } from '../test/helpers/replay.js';
import { adaptRequest, incomplete, isResponseCase, loadCorpus } from '../test/helpers/smuggling-corpus.js';
import { UPSTREAM_CA_FILE } from '../test/helpers/upstream.js';
import { freePort, launch, type PeerProc } from './peers-procs.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const NAMES = (process.argv[2] ?? 'relay,llhttp-undici,llhttp-raw,hand-raw,server-raw').split(',');
// The subset of smuggling.test.ts's tunnel test.
const TUNNEL_CATEGORIES = new Set(['content-length', 'transfer-encoding', 'chunked', 'line-endings', 'headers', 'cl+te', 'hop-by-hop', 'pipelining', 'method']);
const cases = loadCorpus()
  .filter((c) => !isResponseCase(c))
  .filter((c, i) => (c.source === 'curated' ? TUNNEL_CATEGORIES.has(c.category) : c.source.startsWith('defparam') ? i % 20 === 0 : true));

async function start(name: string): Promise<PeerProc> {
  const port = await freePort();
  const file = path.join(HERE, name === 'relay' ? 'peers-relay.ts' : 'raw-relay.ts');
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  return launch(
    process.execPath,
    mkdtempSync(path.join(tmpdir(), 'turret-bench-rawc-')),
    ['--import', 'tsx', file, String(port), UPSTREAM_CA_FILE, ...(name === 'relay' ? [] : [name])],
    port,
  );
}

type Class = 'refused' | 'forwarded' | 'incomplete' | 'other';
const ca = readFileSync(UPSTREAM_CA_FILE);
const classes = new Map<string, Map<string, [Class, string]>>();
for (const name of NAMES) {
  const up = await startRawUpstream();
  const proc = await start(name);
  const authority = `allowed.turret.test:${up.tlsPort}`;
  const out = new Map<string, [Class, string]>();
  let badConns = 0;
  try {
    const replays = await pool(cases, 8, async (c) => {
      const a = adaptRequest(c, { mode: 'tunnel', upstreamPort: up.tlsPort, tlsPort: up.tlsPort, proxyPort: proc.port, auth: '' });
      const r = await replayInTunnel(proc.port, authority, '', ca, a.bytes, { method: a.method ?? undefined, quietMs: 250, hardMs: incomplete(c) ? 1_500 : 5_000 });
      return { c, r, method: a.method };
    });
    await up.settled(300, 10_000);
    badConns = up.conns.filter((x) => x.problem !== null || x.extra.length > 0).length;
    for (const { c, r, method } of replays) {
      const seen = up.conns.filter((x) => x.caseId === c.id);
      const bad = seen.find((x) => x.problem !== null || x.extra.length > 0);
      const s = parseResponses(r.data, { method: method ?? undefined, closed: r.closed });
      const statuses = s.responses.map((x) => x.status).join(',');
      let k: Class;
      if (bad) k = 'other';
      else if (seen.length === 0 && (s.responses.every((x) => x.status === 400) || s.responses.length === 0) && r.closed) k = 'refused';
      else if (seen.length > 0 && seen.every((x) => x.request !== null)) k = 'forwarded';
      else if (incomplete(c)) k = 'incomplete';
      else k = 'other';
      out.set(c.id, [
        k,
        `${statuses || 'none'}${r.closed ? ' closed' : ''}${r.timedOut ? ' timed out' : ''}, ${seen.length} upstream${bad ? ` (${bad.problem ?? `${bad.extra.length} extra bytes`})` : ''}`,
      ]);
    }
  } finally {
    await proc.stop();
    await up.close();
  }
  classes.set(name, out);
  const count = (k: Class): number => [...out.values()].filter(([x]) => x === k).length;
  console.log(`${name}: ${cases.length} cases: ${count('refused')} refused, ${count('forwarded')} forwarded, ${count('incomplete')} incomplete, ${count('other')} other`);
  console.log(`  upstream connections with an invalid request or bytes after it, any case: ${badConns}`);
  for (const [id, [k, why]] of out) if (k === 'other') console.log(`  other ${id}: ${why}`);
}
const base = classes.get('relay');
for (const [name, out] of classes) {
  if (name === 'relay' || !base) continue;
  const diff = [...out].filter(([id, [k]]) => base.get(id)?.[0] !== k);
  console.log(`\n${name} vs relay: ${diff.length} cases differ`);
  for (const [id, [k, why]] of diff) console.log(`  ${id}: ${name} ${k} (${why}); relay ${base.get(id)?.[0]} (${base.get(id)?.[1]})`);
}
