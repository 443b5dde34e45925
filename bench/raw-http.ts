/**
 * How low can Node's HTTP machinery go (issue #15, docs/benchmarks.md "Hot path → Ninth pass")?
 * The peers bench's relay (bench/peers-relay.ts: http.Server + undici) against the leaner
 * variants of bench/raw-relay.ts and squid ssl-bump, in one run, on loopback only: every subject
 * is started once, warmed up, then measured in rounds, the order rotated each round. Each
 * measurement is the peers bench's HTTPS small GET (undici ProxyAgent, CONNECT, keep-alive inside
 * the tunnel, 16 connections, 3 s after a 0.7 s warm-up) with the proxy's CPU (utime + stime of it
 * and its descendants, /proc) per request over the measured window.
 *
 * Before measuring, every Node subject goes through the same correctness checks over a raw TLS
 * client inside CONNECT (keep-alive, pipelining, Content-Length / chunked / close-delimited
 * responses, a 10 MB body, HEAD, request bodies by length and chunked, hop-by-hop headers, smuggling shapes,
 * hostile upstream framing); a subject that fails one is reported and still measured.
 *
 *   node --import tsx bench/raw-http.ts
 *   RAW_ROUNDS=4 RAW_SUBJECTS=relay,llhttp-undici,llhttp-raw,hand-raw,squid node --import tsx bench/raw-http.ts
 *   RAW_PROFILE=1 RAW_ROUNDS=1 node --import tsx bench/raw-http.ts   # V8 profile of the Node subjects
 *
 * RAW_SUBJECTS may name any MODE of raw-relay.ts (llhttp-dispatch, the -consume ones, server-raw, …),
 * and turret (dist/, the peers bench's rules and warm-up; `npm run build` first; not checked here).
 * turret-NAME is the turret of another built checkout, RAW_TURRET_NAME=/its/dir (e.g.
 * `RAW_TURRET_BASE=/tmp/main RAW_SUBJECTS=turret,turret-base,relay`): two builds in one run, rounds
 * alternated, for an A/B of a change.
 * RAW_PROFILE=1: Node subjects get a preload that starts the V8 profiler (200 µs sampling) at
 * the first measured window; each profile's self time is printed as µs per request by file /
 * native function, and the profiles are kept (also for `node bench/profile-busy.mjs DIR`).
 * RAW_PERF=1: Node subjects run with --perf-basic-prof and `perf record` samples 2.5 s of their
 * first measured window; printed as µs per request by layer (kernel, JIT code, V8, OpenSSL,
 * llhttp, libc, …) and by symbol. RAW_SYSCALLS=1: every subject's system calls per request in its
 * first measured window, by kind (bench/raw-syscalls.ts). RAW_CHECKS=0 skips the checks. Bounded: every load loop has
 * a deadline, every check a 5 s timer.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { UPSTREAM_CA_FILE } from '../test/helpers/upstream.js';
import { closedLoop, httpsClient, type Route } from './peers-load.js';
import { freePort, launch, procStats, startRelay, startSquid, type PeerProc } from './peers-procs.js';
import { startUpstreams, turretSubject, type Ports } from './peers.js';
import { BIG_BYTES } from './peers-upstream.js';
import { countSyscalls, syscallTable } from './raw-syscalls.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const LOAD = { concurrency: 16, warmupMs: 700, durationMs: 3_000, maxRequests: 300_000 };
const ROUNDS = Number(process.env.RAW_ROUNDS ?? 4);
const NAMES = (process.env.RAW_SUBJECTS ?? 'relay,llhttp-undici,llhttp-raw,hand-raw,squid').split(',').filter(Boolean);
const PROFILE = process.env.RAW_PROFILE === '1';
const PERF = process.env.RAW_PERF === '1';
const SYSCALLS = process.env.RAW_SYSCALLS === '1';
const syscalls: [string, Map<string, number>, number][] = [];
const profDir = mkdtempSync(path.join(tmpdir(), 'turret-bench-rawprof-'));

interface Subject {
  name: string;
  proc: PeerProc;
  route: Route;
  /** A relay of this bench: gets the correctness checks. */
  checks: boolean;
  /** A Node process: RAW_PROFILE / RAW_PERF trace it. */
  traced: boolean;
}

function preload(name: string): string {
  const file = path.join(profDir, `${name}.mjs`);
  writeFileSync(
    file,
    `import inspector from 'node:inspector'; import { writeFileSync } from 'node:fs';
const s = new inspector.Session(); s.connect(); s.post('Profiler.enable'); s.post('Profiler.setSamplingInterval', { interval: 200 }); process.on('SIGUSR2', () => s.post('Profiler.start'));
process.on('exit', () => s.post('Profiler.stop', (e, r) => { if (!e) writeFileSync(${JSON.stringify(path.join(profDir, name, 'x.cpuprofile'))}, JSON.stringify(r.profile)); }));\n`,
  );
  mkdirSync(path.join(profDir, name));
  return file;
}

async function startNode(name: string, upCa: string): Promise<PeerProc> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-raw-'));
  const prof = PROFILE ? [`--import=${preload(name)}`] : PERF ? ['--perf-basic-prof'] : [];
  const file = name === 'relay' ? path.join(HERE, 'peers-relay.ts') : path.join(HERE, 'raw-relay.ts');
  const args = [...prof, '--import', 'tsx', file, String(port), UPSTREAM_CA_FILE, ...(name === 'relay' ? [] : [name])];
  const p = await launch(process.execPath, dir, args, port);
  return { ...p, caPem: upCa };
}

async function start(name: string, upCa: string, up: { ports: Ports }): Promise<Subject | null> {
  if (name === 'squid') {
    const p = await startSquid(UPSTREAM_CA_FILE);
    return p ? { name, proc: p, route: { proxyPort: p.port, namedHosts: false, ca: p.caPem ?? upCa }, checks: false, traced: false } : null;
  }
  if (name === 'turret' || name.startsWith('turret-')) {
    // dist/ turret with the peers bench's rules (`npm run build` first); its own tests check it.
    // RAW_NODE_OPTIONS_<SUBJECT> (turret-semi → RAW_NODE_OPTIONS_TURRET_SEMI): Node / V8 flags for one subject, e.g. a GC setting A/B'd on one build.
    const flags = [PROFILE ? `--import=${preload(name)}` : PERF ? '--perf-basic-prof' : '', process.env[`RAW_NODE_OPTIONS_${name.toUpperCase().replace(/-/g, '_')}`] ?? ''];
    const env: Record<string, string> = flags.some(Boolean) ? { NODE_OPTIONS: flags.filter(Boolean).join(' ') } : {};
    const t = await turretSubject(up.ports, true, name, env);
    const proc: PeerProc = { port: t.subject.route.proxyPort ?? 0, pid: t.subject.pid ?? 0, stop: t.stop };
    return { name, proc, route: t.subject.route, checks: false, traced: true };
  }
  const p = name === 'relay' && !PROFILE && !PERF ? await startRelay(UPSTREAM_CA_FILE) : await startNode(name, upCa);
  if (!p) return null;
  return { name, proc: p, route: { proxyPort: p.port, namedHosts: false, ca: upCa }, checks: true, traced: true };
}

// ---- correctness checks: a raw client inside CONNECT, responses parsed by llhttp ----

interface Resp {
  status: number;
  headers: Record<string, string>;
  body: string;
}
interface Outcome {
  responses: Resp[];
  closed: boolean;
  timedOut: boolean;
}

interface ParserLike {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(b: Buffer): number | Error;
  finish(): unknown;
  [k: number]: unknown;
}
const { HTTPParser } = createRequire(import.meta.url)('_http_common') as {
  HTTPParser: { new (): ParserLike; RESPONSE: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number; kLenientNone: number };
};

/**
 * Sends `steps[0]`, then each next step once the previous responses are complete (a step may
 * hold several pipelined requests: `counts[i]` responses). `heads` are the indexes of responses
 * to HEAD requests. Resolves when all responses arrived and `untilClose` is false, when the
 * connection closes, or after 5 s.
 */
function exchange(port: number, upPort: number, ca: string, steps: string[], counts: number[], heads: number[] = [], untilClose = false): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { responses: [], closed: false, timedOut: false };
    const sock = net.connect(port, '127.0.0.1');
    let t: tls.TLSSocket | null = null;
    const finish = (): void => {
      clearTimeout(timer);
      t?.destroy();
      sock.destroy();
      resolve(out);
    };
    const timer = setTimeout(() => ((out.timedOut = true), finish()), 5_000);
    sock.write(`CONNECT 127.0.0.1:${upPort} HTTP/1.1\r\nHost: 127.0.0.1:${upPort}\r\n\r\n`);
    let pre = Buffer.alloc(0);
    const onPre = (c: Buffer): void => {
      pre = Buffer.concat([pre, c]);
      const end = pre.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onPre);
      if (!/^HTTP\/1\.[01] 200/.test(pre.toString('latin1'))) return finish();
      t = tls.connect({ socket: sock, servername: 'echo.turret.test', ca });
      const p = new HTTPParser();
      p.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
      let cur: Resp = { status: 0, headers: {}, body: '' };
      let step = 0;
      let due = counts[0] ?? 1;
      p[HTTPParser.kOnHeadersComplete] = (_a: number, _b: number, h: string[], _m: unknown, _u: unknown, status: number): number => {
        const headers: Record<string, string> = {};
        for (let i = 0; i < h.length; i += 2) headers[(h[i] as string).toLowerCase()] = h[i + 1] as string;
        cur = { status, headers, body: '' };
        return heads.includes(out.responses.length) ? 1 : 0;
      };
      p[HTTPParser.kOnBody] = (b: Buffer): void => void (cur.body += b.toString('latin1'));
      p[HTTPParser.kOnMessageComplete] = (): void => {
        out.responses.push(cur);
        if (out.responses.length < due) return;
        step++;
        if (step < steps.length) {
          due += counts[step] ?? 1;
          t?.write(steps[step] as string);
        } else if (!untilClose) finish();
      };
      t.on('data', (b: Buffer) => void p.execute(b));
      t.on('end', () => void p.finish());
      t.on('close', () => ((out.closed = true), finish()));
      t.on('error', () => undefined);
      t.write(steps[0] as string);
    };
    sock.on('data', onPre);
    sock.on('error', () => finish());
  });
}

const SMALL_LEN = 234;
// The client's hop-by-hop headers that must not reach the upstream (a proxy sends its own
// Connection, and Transfer-Encoding when it streams a body of unknown length).
const HOP = ['keep-alive', 'proxy-connection', 'proxy-authorization', 'upgrade', 'te', 'trailer'];
const get = (p: string, extra = ''): string => `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
const post = (headers: string, body: string): string => `POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n${body}`;

type Check = [name: string, steps: string[], counts: number[], heads: number[], untilClose: boolean, ok: (o: Outcome) => boolean];
const small = (r: Resp | undefined): boolean =>
  r?.status === 200 && r.body.length === SMALL_LEN && r.headers['content-length'] === String(SMALL_LEN) && !r.headers['transfer-encoding'];
const refused = (o: Outcome): boolean => o.responses.length === 1 && o.responses[0]?.status === 400 && o.closed;
const echo = (o: Outcome, body: string): boolean => {
  const r = o.responses[0];
  if (r?.status !== 200) return false;
  const e = JSON.parse(r.body) as { method: string; headers: string[]; body: string };
  return e.method === 'POST' && e.body === body && e.headers.includes('x-custom') && !e.headers.some((h) => HOP.includes(h));
};
const HOP_REQ =
  'Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nTE: trailers\r\nTrailer: x-t\r\nx-custom: 1\r\n';
const CHECKS: Check[] = [
  ['keep-alive: 3 GETs one after another', [get('/small'), get('/small'), get('/small')], [1, 1, 1], [], false, (o) => o.responses.length === 3 && o.responses.every(small)],
  [
    'pipelined GET, GET chunked, HEAD, GET',
    [get('/small') + get('/chunked') + `HEAD /small HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n` + get('/small')],
    [4],
    [2],
    false,
    (o) =>
      small(o.responses[0]) &&
      o.responses[1]?.body === 'first chunk, second chunk' &&
      o.responses[2]?.status === 200 &&
      o.responses[2].headers['content-length'] === String(SMALL_LEN) &&
      o.responses[2].body === '' &&
      small(o.responses[3]),
  ],
  [
    '10 MB body by Content-Length, then a GET',
    [get('/big'), get('/small')],
    [1, 1],
    [],
    false,
    (o) => o.responses[0]?.body.length === BIG_BYTES && o.responses[0].headers['content-length'] === String(BIG_BYTES) && small(o.responses[1]),
  ],
  [
    'chunked response stays chunked',
    [get('/chunked')],
    [1],
    [],
    false,
    (o) => o.responses[0]?.headers['transfer-encoding'] === 'chunked' && o.responses[0].body === 'first chunk, second chunk',
  ],
  ['close-delimited upstream, then a GET', [get('/close'), get('/small')], [1, 1], [], false, (o) => o.responses[0]?.body === 'close-delimited body' && small(o.responses[1])],
  ['POST with Content-Length, hop-by-hop dropped', [post(`${HOP_REQ}Content-Length: 11\r\n`, 'hello world')], [1], [], false, (o) => echo(o, 'hello world')],
  ['POST chunked', [post('Transfer-Encoding: chunked\r\nx-custom: 1\r\n', '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n')], [1], [], false, (o) => echo(o, 'hello world')],
  ['Content-Length + Transfer-Encoding refused', [post('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n')], [1], [], true, refused],
  ['two different Content-Lengths refused', [post('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!')], [1], [], true, refused],
  ['Transfer-Encoding gzip refused', [post('Transfer-Encoding: gzip\r\n', 'hello')], [1], [], true, refused],
  ['HTTP/1.1 without Host refused', ['GET /small HTTP/1.1\r\n\r\n'], [1], [], true, refused],
  ['bare LF refused', ['GET /small HTTP/1.1\nHost: 127.0.0.1\n\n'], [1], [], true, refused],
  ['obs-fold refused', ['GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nx-a: 1\r\n 2\r\n\r\n'], [1], [], true, refused],
  [
    'HTTP/1.0 client, chunked upstream: close-delimited',
    ['GET /chunked HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n'],
    [1],
    [],
    true,
    (o) => o.responses[0]?.body === 'first chunk, second chunk' && !o.responses[0].headers['transfer-encoding'] && o.closed,
  ],
  ['upstream sends Content-Length + chunked: 502', [get('/badframe')], [1], [], false, (o) => o.responses[0]?.status === 502],
  ['upstream body short of its length: client cut, not hung', [get('/short')], [1], [], true, (o) => o.responses.length === 0 && o.closed && !o.timedOut],
];

async function check(s: Subject, upPort: number): Promise<string[]> {
  const failed: string[] = [];
  for (const [name, steps, counts, heads, untilClose, ok] of CHECKS) {
    const o = await exchange(s.proc.port, upPort, s.route.ca, steps, counts, heads, untilClose);
    if (!ok(o)) failed.push(`${name} (${o.responses.map((r) => r.status).join(',') || 'no response'}${o.closed ? ', closed' : ''}${o.timedOut ? ', timed out' : ''})`);
  }
  return failed;
}

// ---- measurement ----

async function measure(s: Subject, upPort: number, onStart?: () => void): Promise<{ rps: number; p50: number; count: number; us: number }> {
  const c = httpsClient(s.route, upPort, 'echo.turret.test', LOAD.concurrency);
  let cpu0 = 0;
  try {
    const r = await closedLoop(() => c.get('/small'), {
      ...LOAD,
      onMeasureStart: () => {
        onStart?.();
        cpu0 = procStats(s.proc.pid).cpuMs;
      },
    });
    return { rps: r.rps, p50: r.p50, count: r.count, us: ((procStats(s.proc.pid).cpuMs - cpu0) / r.count) * 1000 };
  } finally {
    await c.close();
  }
}

interface Profile {
  nodes: { id: number; callFrame: { functionName: string; url: string } }[];
  samples: number[];
  startTime: number;
  endTime: number;
}

/**
 * Self time of a subject's profile, µs per request of its profiled window (that window's request
 * count; the samples' real interval from the profile's span), grouped: the relay's own file,
 * undici, each Node internal file, each native function (TLS writes, GC, …).
 */
function summarise(name: string, requests: number): string {
  let p: Profile;
  try {
    p = JSON.parse(readFileSync(path.join(profDir, name, 'x.cpuprofile'), 'utf8')) as Profile;
  } catch {
    return `${name}: no profile`;
  }
  const interval = (p.endTime - p.startTime) / p.samples.length;
  const byId = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const groups = new Map<string, number>();
  let busy = 0;
  for (const id of p.samples) {
    const f = byId.get(id);
    if (!f || f.functionName === '(idle)') continue;
    busy++;
    const u = f.url;
    const key = !u
      ? `(native) ${f.functionName}`
      : u.includes('node_modules/')
        ? u.replace(/.*node_modules\/([^/]+).*/, '$1')
        : u.replace(/^.*\/bench\//, 'bench/').replace(/^node:internal\//, 'node:');
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  const us = (n: number): string => ((n * interval) / requests).toFixed(1);
  const top = [...groups].sort((a, b) => b[1] - a[1]).slice(0, 14);
  return `${name}: ${us(busy)} µs per request in the profile (${requests} requests, ${busy} busy samples of ${interval.toFixed(0)} µs)\n${top.map(([k, v]) => `  ${us(v).padStart(5)}  ${k}`).join('\n')}`;
}

/** `perf record` of a subject for 2.5 s of its measured window (cpu-clock, 4999 Hz, call graphs). */
function perfRecord(s: Subject): ChildProcess {
  const out = path.join(profDir, `${s.name}.perf.data`);
  return spawn('perf', ['record', '-e', 'cpu-clock', '-F', '4999', '-g', '-p', String(s.proc.pid), '-o', out, '--', 'sleep', '2.5'], { stdio: 'ignore' });
}

function perfDone(p: ChildProcess): Promise<string> {
  const file = (p.spawnargs[p.spawnargs.indexOf('-o') + 1] ?? '') as string;
  return new Promise((r) => (p.exitCode !== null ? r(file) : p.once('exit', () => r(file))));
}

const LAYERS: [string, RegExp][] = [
  ['kernel', /^\[kernel/],
  ['JavaScript (JIT code)', /^\[JIT\]/],
  [
    'OpenSSL',
    /^node (ssl|SSL|tls|TLS|EVP|evp|aes|_aes|gcm|CRYPTO|ossl|OSSL|OPENSSL|BIO|bio|ERR|EC_|ec_|BN|bn_|sha|SHA|RAND|x25519|chacha|poly|HMAC|OBJ|ASN1|X509|ghash|_ghash|do_ssl3|ossl|dtls|ctr|CRYPTO|EVP)/,
  ],
  ["node's TLS glue (TLSWrap, NodeBIO)", /^node node::crypto::/],
  ['llhttp (C and its Node binding)', /^node (llhttp|node::\(anonymous namespace\)::Parser)/],
  ['libuv', /^node uv_/],
  ['V8 (builtins, runtime, GC)', /^node (Builtins_|v8::|Runtime_|cppgc|v8_)/],
  ['node C++ (other)', /^node node::/],
  ['libc (malloc, memcpy, …)', /^libc/],
];

/** perf's self samples grouped into layers, as µs per request. */
function layers(file: string, us: number): string[] {
  const r = spawnSync('perf', ['report', '-i', file, '--no-children', '--sort', 'dso,sym', '--stdio', '-g', 'none', '--percent-limit', '0'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const sums = new Map<string, number>();
  for (const l of (r.stdout ?? '').split('\n')) {
    const m = /^\s+([\d.]+)%\s+(\S+(?: tid \d+)?)\s+\[.\]\s+(.*)$/.exec(l);
    if (!m) continue;
    const key = `${m[2]} ${m[3]}`;
    const layer = LAYERS.find(([, re]) => re.test(key))?.[0] ?? 'other';
    sums.set(layer, (sums.get(layer) ?? 0) + Number(m[1]));
  }
  return [...sums].sort((a, b) => b[1] - a[1]).map(([k, v]) => `  ${((v * us) / 100).toFixed(1).padStart(5)}  ${k}`);
}

/** Self samples by DSO and by symbol, as µs of the subject's CPU per request in that round. */
function perfReport(name: string, us: number, file: string): string {
  const rows = (sort: string, n: number): string[] => {
    const r = spawnSync('perf', ['report', '-i', file, '--no-children', '--sort', sort, '--stdio', '-g', 'none', '--percent-limit', '0.7'], { encoding: 'utf8' });
    return (r.stdout ?? '')
      .split('\n')
      .filter((l) => /^\s+[\d.]+%/.test(l))
      .slice(0, n)
      .map((l) => {
        const m = /^\s+([\d.]+)%\s+(.*)$/.exec(l);
        return m ? `  ${((Number(m[1]) * us) / 100).toFixed(1).padStart(5)}  ${(m[2] ?? '').replace(/\s+/g, ' ').trim()}` : l;
      });
  };
  return `${name} (perf, ${us.toFixed(1)} µs per request in that round), by layer:\n${layers(file, us).join('\n')}\nby symbol:\n${rows('dso,sym', 16).join('\n')}`;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? (s[(s.length - 1) >> 1] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

const up = await startUpstreams();
const upCa = readFileSync(UPSTREAM_CA_FILE, 'utf8');
const subjects: Subject[] = [];
const loads: number[] = [loadavg()[0] ?? NaN];
try {
  for (const n of NAMES) {
    const s = await start(n, upCa, up);
    if (s) subjects.push(s);
    else console.log(`${n}: not installed`);
  }
  if (process.env.RAW_CHECKS !== '0') {
    for (const s of subjects.filter((x) => x.checks)) {
      const failed = await check(s, up.ports.https);
      console.log(`checks ${s.name}: ${failed.length === 0 ? `all ${CHECKS.length} pass` : `FAILED ${failed.length}: ${failed.join('; ')}`}`);
    }
  }
  for (const s of subjects) await measure(s, up.ports.https); // warm-up, unmeasured
  const profiled = new Map<string, number>();
  const perfs: [string, number, string][] = [];
  const results = new Map<string, { rps: number[]; us: number[]; p50: number[] }>(subjects.map((s) => [s.name, { rps: [], us: [], p50: [] }]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = subjects.map((_, i) => subjects[(i + round) % subjects.length] as Subject);
    const line: string[] = [];
    for (const s of order) {
      let perf: ChildProcess | null = null;
      const profile = PROFILE && s.traced && round === 0 ? () => process.kill(s.proc.pid, 'SIGUSR2') : undefined;
      let stopCount: (() => Promise<Map<string, number>>) | null = null;
      const perfStart = PERF && s.traced && round === 0 ? () => void (perf = perfRecord(s)) : undefined;
      const countStart = SYSCALLS && round === 0 ? () => void (stopCount = countSyscalls(s.proc.pid)) : undefined;
      const r = await measure(s, up.ports.https, profile ?? perfStart ?? countStart);
      if (stopCount) syscalls.push([s.name, await (stopCount as () => Promise<Map<string, number>>)(), r.count]);
      if (profile) profiled.set(s.name, r.count);
      if (perf) perfs.push([s.name, r.us, await perfDone(perf)]);
      const acc = results.get(s.name);
      acc?.rps.push(r.rps);
      acc?.us.push(r.us);
      acc?.p50.push(r.p50);
      line.push(`${s.name} ${r.us.toFixed(1)} µs ${r.rps.toFixed(0)}/s`);
    }
    loads.push(loadavg()[0] ?? NaN);
    console.log(`round ${round + 1} (load ${(loadavg()[0] ?? NaN).toFixed(2)}): ${line.join(' | ')}`);
  }
  const relay = results.get('relay');
  const squid = results.get('squid');
  // Differences per round (the subjects of one round ran within ~40 s of each other), then their median.
  console.log('\n| subject | proxy CPU µs per request, each round | median | vs relay, median of per-round differences | vs squid, same | req/s, median | p50 ms |');
  console.log('|---|---|---|---|---|---|---|');
  for (const s of subjects) {
    const r = results.get(s.name);
    if (!r) continue;
    const m = median(r.us);
    const vs = (o: { us: number[] } | undefined): string => {
      if (!o) return '—';
      const d = median(r.us.map((x, i) => x - (o.us[i] ?? NaN)));
      return `${d >= 0 ? '+' : ''}${d.toFixed(1)}`;
    };
    console.log(
      `| ${s.name} | ${r.us.map((x) => x.toFixed(1)).join(' / ')} | ${m.toFixed(1)} | ${vs(relay)} | ${vs(squid)} | ${median(r.rps).toFixed(0)} | ${median(r.p50).toFixed(2)} |`,
    );
  }
  console.log(`\nload average (1 min) at start and after each round: ${loads.map((l) => l.toFixed(2)).join(', ')}`);
  // Memory after the last round (the process and its descendants, /proc): a GC or pool setting A/B'd here has its cost beside its speed.
  console.log(
    `\nRSS after the last round, MB (peak): ${subjects
      .map((s) => {
        const p = procStats(s.proc.pid);
        return `${s.name} ${p.rssMb.toFixed(0)} (${p.peakRssMb.toFixed(0)})`;
      })
      .join(', ')}`,
  );
  for (const s of subjects) await s.proc.stop();
  for (const [name, count] of profiled) console.log(`\n${summarise(name, count)}`);
  for (const [name, us, file] of perfs) console.log(`\n${perfReport(name, us, file)}`);
  if (syscalls.length > 0) console.log(`\nsystem calls per request, first measured window (perf stat, all threads):\n${syscallTable(syscalls).join('\n')}`);
} finally {
  for (const s of subjects) await s.proc.stop();
  up.stop();
}
if (PROFILE || PERF) console.log(`profiles kept in ${profDir} (V8: <subject>/, perf: <subject>.perf.data)`);
else rmSync(profDir, { recursive: true, force: true });
