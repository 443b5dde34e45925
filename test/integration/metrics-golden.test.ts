/**
 * /metrics through a real turret process under real traffic (allowed, injected and redacted,
 * policy-denied, refused address, failed upstream, secret in the request, bad proxy credentials,
 * refused CONNECT), with scrapes running while the traffic does: the per-request families that
 * metrics/hot.ts records must print exactly what prom-client's own Counter and Histogram print
 * for the same observations, the way Turret used them before hot.ts.
 *
 * How: a preload in the turret process (NODE_OPTIONS=--import) tees every observation hot.ts
 * takes into a queue; at each scrape, in the same synchronous step in which the Registry takes the
 * hot snapshot, it replays the queue into prom-client Counters and Histograms of a second Registry
 * (same names, help, labels, buckets, registration order) and renders that. The golden text is
 * written to a file named by the SHA-256 of the scraped body, so each scrape, even concurrent ones,
 * is compared with its own golden. The counts are also checked against the audit log.
 * (Agent and secret names cannot hold quotes, newlines or non-ASCII, config/common.ts NAME: the
 * escaping of such label values is compared with prom-client in test/unit/metrics-hot.test.ts.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { completeLines, linesOnDisk } from '../helpers/audit-file.js';
import { adminPort, agentToken, basic, httpGet, rawConnect } from '../helpers/ops.js';
import { parsePrometheusText, type ParsedExposition } from '../helpers/prometheus.js';
import { cleanEnv, ROOT, startTurret, type TurretProc } from '../helpers/turret.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const SECRET = `fake_m7_${randomBytes(18).toString('hex')}`;
const ADMIN_TOKEN = randomBytes(24).toString('hex');
const HOT = [
  'requests_total',
  'request_duration_seconds',
  'upstream_latency_seconds',
  'injections_total',
  'redactions_total',
  'audit_records_total',
  'outbound_secret_blocked_total',
].map((n) => `turret_${n}`);

function preload(dir: string): string {
  const file = path.join(dir, 'tee.mjs');
  writeFileSync(
    file,
    `import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const { Counter, Histogram, Registry } = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))})('prom-client');
const hot = await import(${JSON.stringify(`file://${path.join(ROOT, 'dist/metrics/hot.js')}`)});
const ref = new Registry();
const order = [];            // hot metrics in registration order
const refOf = new Map();     // hot metric -> prom-client metric (made at the first scrape)
const ownerOf = new WeakMap(); // series -> hot metric
const queue = [];            // [hot metric, labels, value] in observation order
const register = Registry.prototype.registerMetric;
Registry.prototype.registerMetric = function (m) {
  if (this !== ref && (m instanceof hot.HotCounter || m instanceof hot.HotHistogram)) order.push(m);
  return register.call(this, m);
};
for (const C of [hot.HotCounter, hot.HotHistogram]) {
  const create = C.prototype.create;
  C.prototype.create = function (labels) { const s = create.call(this, labels); ownerOf.set(s, this); return s; };
}
const inc = hot.CounterSeries.prototype.inc;
hot.CounterSeries.prototype.inc = function (n = 1) { inc.call(this, n); queue.push([ownerOf.get(this), { ...this.labels }, n]); };
const observe = hot.HistogramSeries.prototype.observe;
hot.HistogramSeries.prototype.observe = function (v) { observe.call(this, v); queue.push([ownerOf.get(this), { ...this.labels }, v]); };
const metrics = Registry.prototype.metrics;
Registry.prototype.metrics = function () {
  if (this === ref) return metrics.call(this);
  for (const m of order) if (!refOf.has(m)) {
    const o = { name: m.name, help: m.help, labelNames: [...m.labelNames], registers: [ref] };
    refOf.set(m, m.type === 'counter' ? new Counter(o) : new Histogram({ ...o, buckets: [...m.bounds] }));
  }
  for (const [m, labels, v] of queue.splice(0)) {
    const r = refOf.get(m);
    if (m.type === 'counter') r.inc(labels, v); else r.observe(labels, v);
  }
  // Both snapshots are taken before anything else can run (the Registry calls get() synchronously).
  const body = metrics.call(this);
  const golden = metrics.call(ref);
  return Promise.all([body, golden]).then(([b, g]) => {
    writeFileSync(${JSON.stringify(dir)} + '/' + createHash('sha256').update(b).digest('hex') + '.golden', g);
    return b;
  });
};
`,
  );
  return file;
}

/** The hot families' blocks of a scrape, in order (the Registry separates families by a blank line). */
function hotBlocks(body: string): string {
  const blocks = body.replace(/\n$/, '').split('\n\n');
  return `${blocks.filter((b) => HOT.some((n) => b.startsWith(`# HELP ${n} `))).join('\n\n')}\n`;
}

function value(p: ParsedExposition, name: string, labels: Record<string, string> = {}): number {
  return p.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

/** One curl run (the real binary), any number of URLs on one keep-alive connection; resolves with the status codes. */
function curlRun(opts: string[], urls: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const each = urls.flatMap((u) => ['-o', '/dev/null', u]);
    const p = spawn('curl', ['-sS', '--max-time', '20', '--noproxy', '', '-w', '%{http_code}\\n', ...opts, ...each], { env: cleanEnv() });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.on('error', reject);
    p.on('close', () => resolve(out));
  });
}

describe('per-request metrics print what prom-client printed, under concurrent traffic and scrapes', () => {
  let t: TurretProc;
  let up: Upstream;
  let plain: Upstream;
  let dir: string;
  let admin: number;
  let closedPort: number;
  const tokens: Record<string, string> = {};
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

  before(async () => {
    up = await startUpstream();
    plain = await startUpstream({ tls: false });
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    closedPort = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    dir = mkdtempSync(path.join(tmpdir(), 'turret-metrics-golden-'));
    t = await startTurret({
      rules: {
        'm.yaml': {
          agents: ['agent-a', 'agent.b_2'],
          secrets: [{ name: 'echo.token_2-x', from: { env: 'TEST_M7_TOKEN' }, hosts: ['echo.turret.test:*'] }],
          rules: [
            { name: 'echo', methods: ['read', 'POST'], hosts: ['echo.turret.test:*'], unsafe_addresses: ['127.0.0.1/32'] },
            { name: 'loop', methods: ['read'], hosts: ['loop.turret.test:*'] },
          ],
          local: ['echo.turret.test', 'loop.turret.test'],
        },
      },
      env: { TEST_M7_TOKEN: SECRET, TURRET_ADMIN_TOKEN: ADMIN_TOKEN, NODE_OPTIONS: `--import=${preload(dir)}` },
      args: ['--admin', '127.0.0.1:0', '--no-watch'],
    });
    admin = adminPort(t);
    for (const a of ['agent-a', 'agent.b_2']) tokens[a] = await agentToken(t, a);
  });
  after(async () => {
    await t?.stop();
    await up?.close();
    await plain?.close();
  });

  /** A scrape compared with the golden the preload rendered from the same observations at the same instant. */
  async function scrape(): Promise<ParsedExposition> {
    const r = await httpGet(admin, '/metrics', auth);
    assert.equal(r.status, 200);
    const golden = path.join(dir, `${createHash('sha256').update(r.body).digest('hex')}.golden`);
    assert.ok(existsSync(golden), 'the preload saw this scrape');
    assert.equal(hotBlocks(r.body), readFileSync(golden, 'utf8'));
    return parsePrometheusText(r.body);
  }

  it('every scrape during and after the traffic equals the golden; the counts match the audit log', async () => {
    const caFile = path.join(t.caDir, 'ca.crt');
    const px = (agent: string, token = tokens[agent] ?? ''): string[] => ['-x', `http://127.0.0.1:${t.port}`, '--proxy-user', `${agent}:${token}`, '--cacert', caFile];
    const handle = (await t.cli(['handle', 'issue', '--agent', 'agent-a', '--secret', 'echo.token_2-x'])).stdout.trim();
    const echo = `echo.turret.test:${up.port}`;
    const ROUNDS = 4;
    const kinds: Array<{ opts: string[]; urls: string[]; expect: string }> = [
      // Allowed, a handle injected whose echo comes back redacted; keep-alive, several per connection.
      { opts: [...px('agent-a'), '-H', `Authorization: Bearer ${handle}`], urls: Array.from({ length: 5 }, (_, i) => `https://${echo}/inj${i}`), expect: '200' },
      // Allowed over plain HTTP by the other agent (upstream latency by scheme http).
      { opts: px('agent.b_2'), urls: Array.from({ length: 3 }, (_, i) => `http://echo.turret.test:${plain.port}/p${i}`), expect: '200' },
      { opts: [...px('agent.b_2'), '-X', 'DELETE'], urls: [`https://${echo}/x`], expect: '403' },
      { opts: px('agent-a'), urls: [`http://loop.turret.test:${plain.port}/`], expect: '403' },
      { opts: px('agent-a'), urls: [`http://echo.turret.test:${closedPort}/`], expect: '502' },
      { opts: [...px('agent-a'), '-H', `X-Api-Key: ${SECRET}`], urls: [`http://echo.turret.test:${plain.port}/leak`], expect: '403' },
      { opts: px('agent-a', 'wrong'), urls: [`http://echo.turret.test:${plain.port}/`], expect: '407' },
      { opts: px('agent-a'), urls: [`https://loop.turret.test:${up.port}/`], expect: '000' },
    ];
    let pending = 0;
    const runs: Array<Promise<{ out: string; k: (typeof kinds)[number] }>> = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const k of kinds) {
        pending++;
        runs.push(
          curlRun(k.opts, k.urls).then((out) => {
            pending--;
            return { out, k };
          }),
        );
      }
    }
    // Scrapes two at a time while the traffic runs (bounded: the traffic ends).
    let during = 0;
    while (pending > 0 && during < 200) {
      await Promise.all([scrape(), scrape()]);
      during += 2;
    }
    for (const { out, k } of await Promise.all(runs)) assert.deepEqual(out.trim().split('\n'), Array(k.urls.length).fill(k.expect), k.urls.join(' '));
    assert.ok(during > 0, 'at least one pair of scrapes overlapped the traffic');

    // After the traffic: wait until the audit file holds every record the scrape counted, then compare.
    let p = await scrape();
    let lines: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 50; i++) {
      const total = value(p, 'turret_audit_records_total');
      await linesOnDisk(t.auditPath, total);
      lines = completeLines(t.auditPath).map((l) => JSON.parse(l) as Record<string, unknown>);
      if (lines.length === total) break;
      p = await scrape();
    }
    assert.equal(lines.length, value(p, 'turret_audit_records_total'));
    const tally = new Map<string, number>();
    const bump = (k: string): void => void tally.set(k, (tally.get(k) ?? 0) + 1);
    for (const l of lines) {
      bump(`audit ${String(l.event)} ${String(l.outcome)}`);
      if (l.event === 'request' || (l.event === 'tunnel_open' && l.code)) {
        const decision = l.outcome === 'completed' ? 'allowed' : String(l.outcome);
        bump(`req ${String(l.agent ?? 'unknown')} ${decision} ${String(l.code ?? 'none')}`);
        if (l.event === 'request') bump(`dur ${decision}`);
      }
    }
    for (const [k, n] of tally) {
      const [kind, a, b, c] = k.split(' ') as [string, string, string, string | undefined];
      if (kind === 'audit') assert.equal(value(p, 'turret_audit_records_total', { event: a, outcome: b }), n, k);
      if (kind === 'req') assert.equal(value(p, 'turret_requests_total', { agent: a, decision: b, code: c ?? '' }), n, k);
      if (kind === 'dur') assert.equal(value(p, 'turret_request_duration_seconds_count', { decision: a }), n, k);
    }
    assert.equal(value(p, 'turret_requests_total', { agent: 'agent-a', decision: 'allowed', code: 'none' }), 5 * ROUNDS);
    assert.equal(value(p, 'turret_requests_total', { agent: 'agent.b_2', decision: 'allowed', code: 'none' }), 3 * ROUNDS);
    assert.equal(value(p, 'turret_injections_total', { secret: 'echo.token_2-x' }), 5 * ROUNDS);
    assert.equal(value(p, 'turret_outbound_secret_blocked_total', { secret: 'echo.token_2-x' }), ROUNDS);
    assert.ok(value(p, 'turret_redactions_total') >= 5 * ROUNDS, 'every injected echo was redacted');
    assert.equal(value(p, 'turret_upstream_latency_seconds_count', { scheme: 'http' }), 3 * ROUNDS);
    assert.equal(value(p, 'turret_upstream_latency_seconds_count', { scheme: 'https' }), 5 * ROUNDS);
    assert.ok(!readFileSync(t.auditPath, 'utf8').includes(SECRET) && !t.stderr().includes(SECRET) && !t.stdout().includes(SECRET));
  });

  it('a refused CONNECT and a bad credential on a raw socket are counted once each, and the text still matches', async () => {
    const before = await scrape();
    const r = await rawConnect(t.port, `loop.turret.test:${up.port}`, basic('agent-a', tokens['agent-a'] ?? ''));
    r.socket.destroy();
    const bad = await rawConnect(t.port, `echo.turret.test:${up.port}`, basic('agent.b_2', 'nope'));
    bad.socket.destroy();
    assert.equal(bad.status, 407);
    const after = await scrape();
    const sum = (p: ParsedExposition): number => value(p, 'turret_requests_total');
    assert.equal(sum(after) - sum(before), 2);
  });
});
