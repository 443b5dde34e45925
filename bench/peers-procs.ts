/**
 * The peer proxies of `npm run bench -- peers`, each started as one foreground process on
 * 127.0.0.1 with a throw-away configuration in a temp dir, and stopped by its own pid. A peer
 * whose binary is missing returns null and the bench reports it as "not installed".
 *
 *   tinyproxy — plain HTTP forward; CONNECT as an opaque tunnel (no interception)
 *   squid     — ssl-bump: intercepts HTTPS with its own CA like Turret; plain HTTP forward;
 *               caching off (`cache deny all`), access log to a file (Turret audits too),
 *               DNS pointed at 127.0.0.1 so a stray lookup can never leave the machine
 *   mitmdump  — intercepts HTTPS with its own CA (confdir in the temp dir), verifies the upstream
 *               against the test CA; default options (it buffers whole bodies)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface PeerProc {
  port: number;
  pid: number;
  /** The intercepting CA a client must trust (squid with ssl-bump, mitmdump). */
  caPem?: string;
  stop(): Promise<void>;
}

export function findBin(name: string): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin']) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), r(true)));
    s.once('error', () => r(false));
  });
}

/** Pids of a process's live descendants, from /proc/PID/task/TID/children (Linux 3.5+). */
function descendants(pid: number, out: number[] = []): number[] {
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out; // exited meanwhile
  }
  for (const tid of tids) {
    let kids = '';
    try {
      kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const k of kids.split(' ').filter(Boolean)) {
      out.push(Number(k));
      descendants(Number(k), out);
    }
  }
  return out;
}

function one(pid: number): { peakKb: number; rssKb: number; ticks: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
    // Fields after the ")" of the command name: utime, stime, cutime, cstime are the 14th–17th
    // overall (cutime/cstime: children already exited and reaped, e.g. squid's helpers).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { peakKb: kb('VmHWM'), rssKb: kb('VmRSS'), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) };
  } catch {
    return { peakKb: 0, rssKb: 0, ticks: 0 };
  }
}

/**
 * Peak and current RSS (MB) and CPU time used so far (ms), from /proc, summed over the process
 * and its live descendants: `turret start --workers N` serves from N forked workers (through
 * BENCH_TURRET_ARGS), squid forks its certificate helpers. The peak is the sum of each process's
 * own peak, an upper bound when they peaked at different times.
 */
export function procStats(pid: number): { peakRssMb: number; rssMb: number; cpuMs: number } {
  const all = [pid, ...descendants(pid)].map(one);
  const sum = (k: 'peakKb' | 'rssKb' | 'ticks'): number => all.reduce((a, x) => a + x[k], 0);
  return { peakRssMb: sum('peakKb') / 1024, rssMb: sum('rssKb') / 1024, cpuMs: (sum('ticks') * 1000) / 100 };
}

/** Starts `bin` and waits until it accepts connections; stopping it also removes its temp `dir`. */
export async function launch(bin: string, dir: string, args: string[], port: number, ready: () => boolean = () => true): Promise<PeerProc> {
  const proc: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const stop = async (): Promise<void> => {
    await new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
      setTimeout(() => proc.kill('SIGKILL'), 3_000).unref();
    });
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${path.basename(bin)} exited ${proc.exitCode}: ${stderr}`);
    }
    if ((await canConnect(port)) && ready()) return { port, pid: proc.pid ?? -1, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`${path.basename(bin)} did not listen within 20 s: ${stderr}`);
}

export async function startTinyproxy(): Promise<PeerProc | null> {
  const bin = findBin('tinyproxy');
  if (!bin) return null;
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-tinyproxy-'));
  const port = await freePort();
  const conf = path.join(dir, 'tinyproxy.conf');
  // No ConnectPort line: CONNECT is allowed to any port (the upstream's is random).
  writeFileSync(conf, `Port ${port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 256\nLogLevel Error\nAllow 127.0.0.1\n`);
  return launch(bin, dir, ['-d', '-c', conf], port);
}

/**
 * squid with ssl-bump: it intercepts HTTPS like Turret (its own CA, generated in the temp dir and
 * trusted by the client; leaf certificates minted per host by security_file_certgen; the upstream
 * verified against `upstreamCaFile`). Plain HTTP as a forward proxy. Caching off, access log to a
 * file, DNS pointed at 127.0.0.1 so a stray lookup can never leave the machine.
 */
export async function startSquid(upstreamCaFile: string): Promise<PeerProc | null> {
  const bin = findBin('squid');
  const certgen = ['/usr/lib/squid/security_file_certgen', '/usr/lib64/squid/security_file_certgen'].find((f) => existsSync(f));
  if (!bin || !certgen) return null;
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-squid-'));
  // Squid started as root drops to its own user, which must be able to write its logs here.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const caKey = path.join(dir, 'ca.key');
  const caCrt = path.join(dir, 'ca.crt');
  const gen = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      caKey,
      '-out',
      caCrt,
      '-days',
      '2',
      '-subj',
      '/CN=turret bench squid CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    { encoding: 'utf8' },
  );
  if (gen.status !== 0) throw new Error(`openssl could not make the squid CA: ${gen.stderr}`);
  chmodSync(caKey, 0o644);
  const db = path.join(dir, 'ssl_db');
  const init = spawnSync(certgen, ['-c', '-s', db, '-M', '16MB'], { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`security_file_certgen -c failed: ${init.stderr}`);
  spawnSync('chmod', ['-R', 'a+rwX', db]);
  // Squid's own user may not reach the repository: it reads a copy of the upstream CA.
  const upCa = path.join(dir, 'upstream-ca.crt');
  writeFileSync(upCa, readFileSync(upstreamCaFile), { mode: 0o644 });
  const conf = path.join(dir, 'squid.conf');
  writeFileSync(
    conf,
    [
      `http_port 127.0.0.1:${port} ssl-bump tls-cert=${caCrt} tls-key=${caKey} generate-host-certificates=on dynamic_cert_mem_cache_size=16MB`,
      `sslcrtd_program ${certgen} -s ${db} -M 16MB`,
      'sslcrtd_children 4 startup=1 idle=1',
      'acl step1 at_step SslBump1',
      'ssl_bump peek step1',
      'ssl_bump bump all',
      `tls_outgoing_options cafile=${upCa}`,
      // The peers get 127.0.0.1 in the URL and the name only in SNI; squid checks the upstream's
      // certificate name against the CONNECT address, which it cannot match. Only that error is
      // accepted: the chain is still verified against the upstream CA.
      'acl name_mismatch ssl_error SQUID_X509_V_ERR_DOMAIN_MISMATCH',
      'sslproxy_cert_error allow name_mismatch',
      'sslproxy_cert_error deny all',
      'acl bench src 127.0.0.1/32',
      'http_access allow bench',
      'http_access deny all',
      'cache deny all',
      'dns_nameservers 127.0.0.1',
      'pid_filename none',
      `cache_log ${path.join(dir, 'cache.log')}`,
      `access_log stdio:${path.join(dir, 'access.log')}`,
      `coredump_dir ${dir}`,
      'visible_hostname turret-bench',
      'shutdown_lifetime 0 seconds',
      '',
    ].join('\n'),
  );
  const p = await launch(bin, dir, ['-N', '-f', conf], port);
  return { ...p, caPem: readFileSync(caCrt, 'utf8') };
}

/** The minimal Node relay (bench/peers-relay.ts), the floor of Node's own TLS and HTTP cost. */
export async function startRelay(upstreamCaFile: string): Promise<PeerProc | null> {
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-relay-'));
  const port = await freePort();
  const file = path.join(path.dirname(new URL(import.meta.url).pathname), 'peers-relay.ts');
  const p = await launch(process.execPath, dir, ['--import', 'tsx', file, String(port), upstreamCaFile], port);
  return { ...p, caPem: readFileSync(upstreamCaFile, 'utf8') };
}

export async function startMitmdump(upstreamCaFile: string): Promise<PeerProc | null> {
  const bin = findBin('mitmdump');
  if (!bin) return null;
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-mitm-'));
  const port = await freePort();
  const caFile = path.join(dir, 'mitmproxy-ca-cert.pem');
  const p = await launch(
    bin,
    dir,
    ['-q', '--listen-host', '127.0.0.1', '--listen-port', String(port), '--set', `confdir=${dir}`, '--set', `ssl_verify_upstream_trusted_ca=${upstreamCaFile}`],
    port,
    () => existsSync(caFile),
  );
  return { ...p, caPem: readFileSync(caFile, 'utf8') };
}

export interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
}

/** ms from wrk's "1.23ms" / "850.00us" / "1.02s". */
function wrkMs(s: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(s ?? '');
  if (!m) return NaN;
  return Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 }[m[2] as 'us' | 'ms' | 's'] ?? NaN);
}

/**
 * wrk against a plain-HTTP URL, optionally through a proxy (absolute-form request line via a Lua
 * script: wrk itself knows nothing of proxies, and cannot do CONNECT). One thread, fixed
 * connections; wrk's own timeout bounds every request.
 */
export function runWrk(o: { url: string; proxyPort?: number; proxyAuth?: string; connections: number; seconds: number }): WrkResult | null {
  const bin = findBin('wrk');
  if (!bin) return null;
  const u = new URL(o.url);
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-wrk-'));
  const script = path.join(dir, 'proxy.lua');
  const lines = [`wrk.headers["Host"] = ${JSON.stringify(u.host)}`];
  if (o.proxyPort) lines.push(`wrk.path = ${JSON.stringify(o.url)}`);
  if (o.proxyAuth) lines.push(`wrk.headers["Proxy-Authorization"] = ${JSON.stringify(o.proxyAuth)}`);
  writeFileSync(script, `${lines.join('\n')}\n`);
  const target = o.proxyPort ? `http://127.0.0.1:${o.proxyPort}/` : `http://127.0.0.1:${u.port}${u.pathname}`;
  const r = spawnSync(bin, ['-t1', `-c${o.connections}`, `-d${o.seconds}s`, '--timeout', '10s', '--latency', '-s', script, target], {
    encoding: 'utf8',
    timeout: (o.seconds + 20) * 1000,
  });
  rmSync(dir, { recursive: true, force: true });
  const out = r.stdout ?? '';
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (r.status !== 0 || non2xx) throw new Error(`wrk failed (${r.status}, non-2xx ${non2xx?.[1] ?? 0}): ${out.slice(-400)} ${r.stderr ?? ''}`);
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN), p50: wrkMs(/\s50%\s+(\S+)/.exec(out)?.[1]), p99: wrkMs(/\s99%\s+(\S+)/.exec(out)?.[1]) };
}
