/**
 * Turret against the proxies it aims to beat, in one run, on loopback only, against the same
 * local upstreams (bench/peers-upstream.ts, its own process):
 *
 *   direct     — no proxy: the baseline
 *   turret     — dist/ turret, explicit proxy: plain HTTP in absolute form; HTTPS through CONNECT
 *                with interception (keep-alive inside the tunnel); with and without a handle
 *                injection; default scrubbing. Plus "turret, scrub off" (a second turret whose
 *                `scrub.content_types` excludes JSON) for HTTPS only, to separate scrubbing out.
 *   tinyproxy  — plain HTTP forward; HTTPS as an opaque CONNECT tunnel: it does NOT intercept
 *                (no decision, no injection, no scrubbing is possible inside)
 *   squid      — ssl-bump: intercepts HTTPS with its own CA (trusted by the client), like Turret
 *                (but makes no per-request decision, injection or scrubbing); plain HTTP
 *   mitmproxy  — mitmdump, intercepting HTTPS with its own CA (trusted by the client); plain HTTP
 *   node relay — bench/peers-relay.ts: terminates TLS, relays, nothing else: Node's floor
 *
 * Metrics: small-request req/s and p50/p99 at 16 connections (undici closed loop; plus wrk for
 * plain HTTP, where a C client cannot be the bottleneck), 10 MB download MB/s on one connection,
 * first request to a new HTTPS host name (fresh connection; Turret mints a leaf per host) versus a
 * fresh connection to a known host, the proxy's CPU time per request in the measured window
 * (utime + stime from /proc: steadier than req/s on a shared machine), and the proxy's RSS after
 * start and at its peak. A peer that is not installed is reported as such and skipped. Not part
 * of `npm test` or CI. One run takes about 1.5–2 minutes; every loop is bounded.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTurret, cleanEnv } from '../test/helpers/turret.js';
import { LOOPBACK, type RuleFile, type Secret } from '../test/helpers/rules.js';
import { UPSTREAM_CA_FILE } from '../test/helpers/upstream.js';
import { closedLoop, download, firstRequests, httpClient, httpsClient, type Client, type Route } from './peers-load.js';
import { procStats, runWrk, startMitmdump, startRelay, startSquid, startTinyproxy, type PeerProc } from './peers-procs.js';
import { printTables, type Row } from './peers-report.js';
import { BIG_BYTES } from './peers-upstream.js';
import { YOUNG_GENERATION_FLAG } from '../src/cli/heap.js';

const CONCURRENCY = 16;
const LOAD = { concurrency: CONCURRENCY, warmupMs: 700, durationMs: 3_000, maxRequests: 300_000 };
const WARM_MS = 3_000;
const BIG = { maxRuns: 5, maxMs: 3_000 };
const NEW_HOSTS = 30;
const HOST = 'echo.turret.test';
const hostNames = Array.from({ length: NEW_HOSTS }, (_, i) => `h${i}.turret.test`);

export interface Ports {
  http: number;
  https: number;
}

export function startUpstreams(): Promise<{ ports: Ports; stop: () => void }> {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peers-upstream.ts');
  const p = spawn(process.execPath, ['--import', 'tsx', file], { stdio: ['pipe', 'pipe', 'inherit'], env: cleanEnv() });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('upstreams did not start in 20 s')), 20_000);
    p.once('exit', (c) => reject(new Error(`upstreams exited ${c}`)));
    p.stdout.once('data', (c: Buffer) => {
      clearTimeout(timer);
      resolve({ ports: JSON.parse(c.toString()) as Ports, stop: () => void p.kill('SIGTERM') });
    });
  });
}

// unsafe_addresses needs exact host names (no "*." patterns), so every name is listed.
export function turretRules(scrub: boolean, extraSecrets: readonly Secret[] = []): RuleFile {
  return {
    agents: ['bench'],
    secrets: [{ name: 'bench-token', from: { env: 'BENCH_TOKEN' }, hosts: [`${HOST}:*`] }, ...extraSecrets],
    rules: [{ name: 'bench', methods: ['read'], hosts: [HOST, ...hostNames].map((h) => `${h}:*`), unsafe_addresses: LOOPBACK }],
    ...(scrub ? {} : { scrub: { content_types: ['text/plain'] } }),
    local: [HOST, ...hostNames],
  };
}

/** What one subject (direct, or a proxy) is asked to do, and how to reach it. */
export interface Subject {
  name: string;
  route: Route;
  pid?: number;
  plainHttp: boolean;
  /** Extra request headers for the HTTPS small-request loop (Turret's handle), by label. */
  variants: Record<string, Record<string, string>>;
  big: boolean;
  newHosts: boolean;
}

async function guarded<T>(label: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    console.error(`peers: ${label}: ${(e as Error).message}`);
    return undefined;
  }
}

async function withClient<T>(c: Client, fn: (c: Client) => Promise<T>): Promise<T> {
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

/**
 * A small-request closed loop, plus the proxy's CPU per 1 000 requests in the measured window
 * (steady state: the warm-up's connection set-up, paid once per connection, is reported by the
 * new-connection columns instead).
 */
async function small(s: Subject, what: string, c: Client, headers: Record<string, string> = {}): Promise<{ rps: number; p50: number; p99: number; cpuPer1k?: number } | undefined> {
  let cpu0 = NaN;
  const onMeasureStart = (): void => void (cpu0 = s.pid ? procStats(s.pid).cpuMs : NaN);
  const r = await guarded(`${s.name} ${what}`, () => withClient(c, (cl) => closedLoop(() => cl.get('/small', headers), { ...LOAD, onMeasureStart })));
  if (!r) return undefined;
  return { ...r, ...(s.pid ? { cpuPer1k: ((procStats(s.pid).cpuMs - cpu0) / r.count) * 1000 } : {}) };
}

/** Small requests over both schemes, then each HTTPS variant (Turret's handle), unmeasured (WARM_MS each). */
async function warmUp(s: Subject, ports: Ports): Promise<void> {
  const clients = [...(s.plainHttp ? [() => httpClient(s.route, ports.http, HOST, CONCURRENCY)] : []), () => httpsClient(s.route, ports.https, HOST, CONCURRENCY)];
  for (const make of clients) await guarded(`${s.name} warm-up`, () => withClient(make(), (c) => closedLoop(() => c.get('/small'), { ...LOAD, warmupMs: 0, durationMs: WARM_MS })));
  // The handle's injection code is cold otherwise, and its variant was measured on it (bench/cpu.ts).
  for (const headers of Object.values(s.variants)) {
    await guarded(`${s.name} warm-up`, () =>
      withClient(httpsClient(s.route, ports.https, HOST, CONCURRENCY), (c) => closedLoop(() => c.get('/small', headers), { ...LOAD, warmupMs: 0, durationMs: WARM_MS / 2 })),
    );
  }
}

async function measure(s: Subject, ports: Ports): Promise<Row[]> {
  const rows: Row[] = [];
  const base: Row = { subject: s.name, variant: '' };
  if (s.pid) base.idleRssMb = procStats(s.pid).rssMb;
  const https = (host: string, connections: number): Client => httpsClient(s.route, ports.https, host, connections);
  // A fresh process is several times dearer per request until its code is optimised, and
  // whichever scenario ran first used to pay that alone (plain HTTP measured 373 µs against
  // HTTPS's 281 in one run for no other reason): every subject gets the same unmeasured warm-up.
  await warmUp(s, ports);
  if (s.plainHttp) {
    const r = await small(s, 'http small', httpClient(s.route, ports.http, HOST, CONCURRENCY));
    if (r) Object.assign(base, { httpRps: r.rps, httpP50: r.p50, httpP99: r.p99, cpuHttpPer1k: r.cpuPer1k });
    const authority = `${s.route.namedHosts ? HOST : '127.0.0.1'}:${ports.http}`;
    const w = await guarded(`${s.name} wrk`, async () =>
      runWrk({
        url: `http://${authority}/small`,
        ...(s.route.proxyPort ? { proxyPort: s.route.proxyPort } : {}),
        ...(s.route.proxyAuth ? { proxyAuth: s.route.proxyAuth } : {}),
        connections: CONCURRENCY,
        seconds: 3,
      }),
    );
    if (w) Object.assign(base, { wrkRps: w.rps, wrkP50: w.p50, wrkP99: w.p99 });
    if (s.big) base.httpMBs = await guarded(`${s.name} http big`, () => withClient(httpClient(s.route, ports.http, HOST, 1), (c) => download(c, BIG_BYTES, BIG)));
  }
  const r = await small(s, 'https small', https(HOST, CONCURRENCY));
  if (r) Object.assign(base, { httpsRps: r.rps, httpsP50: r.p50, httpsP99: r.p99, cpuPer1k: r.cpuPer1k });
  if (s.big) base.httpsMBs = await guarded(`${s.name} https big`, () => withClient(https(HOST, 1), (c) => download(c, BIG_BYTES, BIG)));
  if (s.newHosts) {
    base.newHostMs = await guarded(`${s.name} new hosts`, () => firstRequests((h) => https(h, 1), hostNames));
    base.knownHostMs = await guarded(`${s.name} known host`, () =>
      firstRequests(
        (h) => https(h, 1),
        hostNames.map(() => HOST),
      ),
    );
  }
  rows.push(base);
  for (const [label, headers] of Object.entries(s.variants)) {
    const v = await small(s, label, https(HOST, CONCURRENCY), headers);
    if (v) rows.push({ subject: s.name, variant: label, httpsRps: v.rps, httpsP50: v.p50, httpsP99: v.p99, cpuPer1k: v.cpuPer1k });
  }
  if (s.pid) base.peakRssMb = procStats(s.pid).peakRssMb;
  return rows;
}

/** `extraEnv` lets bench/peers-profile.ts pass NODE_OPTIONS (e.g. --cpu-prof) to the turret process. */
/**
 * `extraSecrets`: secrets added beside bench-token, e.g. the file and
 * store secrets of bench/cpu.ts; `beforeStart` may write their files into the turret's dir.
 */
export async function turretSubject(
  ports: Ports,
  scrub: boolean,
  name: string,
  extraEnv: Record<string, string> = {},
  extraSecrets: readonly Secret[] = [],
): Promise<{ subject: Subject; stop: () => Promise<void>; caDir: string }> {
  const t = await startTurret({
    ...(name.startsWith('turret-') ? { main: `${process.env[`RAW_TURRET_${name.slice(7).toUpperCase()}`]}/dist/main.js` } : {}),
    rules: { 'bench.yaml': turretRules(scrub, extraSecrets) },
    env: { BENCH_TOKEN: `fake_bench_${randomBytes(16).toString('hex')}`, ...extraEnv },
    // BENCH_TURRET_ARGS: extra `turret start` options for A/B runs (e.g. `--audit off` to see what the audit costs).
    args: ['--admin', 'off', ...(process.env.BENCH_TURRET_ARGS?.split(' ').filter(Boolean) ?? [])],
    // Started as its launchers start it (npm start, the bin, Dockerfile, deploy/: src/cli/heap.ts), unless the
    // subject's NODE_OPTIONS chooses its own young generation (an A/B: --max-semi-space-size=16 is V8's default).
    // BENCH_NODE_ARGS_<SUBJECT> (turret-min → BENCH_NODE_ARGS_TURRET_MIN): node flags node refuses in NODE_OPTIONS, e.g. --min-semi-space-size.
    node: [
      ...(/semi[-_]space/.test(extraEnv.NODE_OPTIONS ?? '') ? [] : [YOUNG_GENERATION_FLAG]),
      ...(process.env[`BENCH_NODE_ARGS_${name.toUpperCase().replace(/-/g, '_')}`]?.split(' ').filter(Boolean) ?? []),
    ],
  });
  try {
    const env = await t.cli(['env', '--agent', 'bench']);
    const token = /HTTPS_PROXY='http:\/\/bench:([^@]+)@/.exec(env.stdout)?.[1];
    const issued = await t.cli(['handle', 'issue', '--agent', 'bench', '--secret', 'bench-token', '--ttl', '1h']);
    const handle = issued.stdout.trim();
    // stderr only (stdout holds credentials): e.g. dist/ being rebuilt under the bench.
    if (!token) throw new Error(`turret env printed no agent credential (exit ${env.code}): ${env.stderr.slice(0, 300)}`);
    if (!handle.startsWith('trt_')) throw new Error(`turret handle issue printed no handle (exit ${issued.code}): ${issued.stderr.slice(0, 300)}`);
    const route: Route = {
      proxyPort: t.port,
      proxyAuth: `Basic ${Buffer.from(`bench:${token}`).toString('base64')}`,
      namedHosts: true,
      ca: readFileSync(path.join(t.caDir, 'ca.crt'), 'utf8'),
    };
    const subject: Subject = {
      name,
      route,
      pid: t.proc.pid ?? 0,
      plainHttp: scrub,
      big: true,
      newHosts: scrub,
      variants: scrub ? { 'with handle injection': { authorization: `Bearer ${handle}` } } : {},
    };
    return { subject, caDir: t.caDir, stop: async () => (await t.stop(), rmSync(t.dir, { recursive: true, force: true })) };
  } catch (e) {
    await t.stop();
    rmSync(t.dir, { recursive: true, force: true });
    throw e;
  }
}

const PEERS: ReadonlyArray<[string, () => Promise<PeerProc | null>]> = [
  ['tinyproxy (HTTPS: opaque tunnel, no interception)', startTinyproxy],
  ['squid (ssl-bump, intercepting)', () => startSquid(UPSTREAM_CA_FILE)],
  ['mitmproxy (mitmdump, intercepting)', () => startMitmdump(UPSTREAM_CA_FILE)],
  ['node relay (TLS-terminating floor, nothing else)', () => startRelay(UPSTREAM_CA_FILE)],
];

export async function benchPeers(): Promise<Record<string, number>> {
  const up = await startUpstreams();
  const rows: Row[] = [];
  const missing: string[] = [];
  const upCa = readFileSync(UPSTREAM_CA_FILE, 'utf8');
  const load: Record<string, number> = { 'load average (1 min) at start': loadavg()[0] ?? NaN };
  try {
    rows.push(...(await measure({ name: 'direct (no proxy)', route: { namedHosts: false, ca: upCa }, plainHttp: true, variants: {}, big: true, newHosts: true }, up.ports)));
    for (const [scrub, name] of [
      [true, 'turret'],
      [false, 'turret, scrub off'],
    ] as const) {
      const t = await guarded(`${name} start`, () => turretSubject(up.ports, scrub, name));
      if (!t) {
        missing.push(`${name}: failed to start (see stderr)`);
        continue;
      }
      try {
        rows.push(...(await measure(t.subject, up.ports)));
      } finally {
        await t.stop();
      }
    }
    for (const [name, start] of PEERS) {
      const p = await guarded(`${name} start`, start);
      const short = name.split(' ')[0] ?? name;
      if (p === null) missing.push(`${short}: not installed`);
      if (p === undefined) missing.push(`${short}: failed to start (see stderr)`);
      if (!p) continue;
      try {
        // Tunnel peers: the client verifies the upstream itself; mitmdump: its own CA.
        rows.push(
          ...(await measure(
            { name, route: { proxyPort: p.port, namedHosts: false, ca: p.caPem ?? upCa }, pid: p.pid, plainHttp: true, variants: {}, big: true, newHosts: true },
            up.ports,
          )),
        );
      } finally {
        await p.stop();
      }
    }
    // The machine may be shared: a second baseline at the end shows how much it drifted.
    rows.push(
      ...(await measure({ name: 'direct, again at the end', route: { namedHosts: false, ca: upCa }, plainHttp: true, variants: {}, big: false, newHosts: false }, up.ports)),
    );
  } finally {
    up.stop();
  }
  load['load average (1 min) at end'] = loadavg()[0] ?? NaN;
  return printTables(rows, missing, load);
}
