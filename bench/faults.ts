/**
 * `npm run bench -- faults` (issue #13): what an idle intercepted tunnel costs, and how much one
 * agent's hung requests delay another agent.
 *
 *   tunnels   a turret (dist/) and TUNNELS intercepted tunnels opened by this process (CONNECT,
 *             TLS handshake with Turret's leaf, one GET inside, then idle). File descriptors
 *             (/proc/PID/fd) and RSS (/proc/PID/status) of the turret process before and after,
 *             divided by the number of tunnels. RSS is read after SETTLE_MS without traffic.
 *   starve    agent B's request latency (sequential GETs over one keep-alive connection, plain
 *             HTTP to a local upstream) alone, then while agent A holds HUNG requests to the same
 *             origin that the upstream never answers (A's pool: 64 connections held, the rest
 *             queued). p50 and p99 in ms, and the ratio with/without.
 *
 * Loopback only; not part of CI. BENCH_FAULTS_TUNNELS=N and BENCH_FAULTS_REQUESTS=N change the sizes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { startFaultUpstream, type FaultUpstream } from '../test/helpers/fault-upstream.js';
import { agentToken, basic, rawConnect } from '../test/helpers/ops.js';
import { readResponse } from '../test/helpers/raw-proxy.js';
import { LOOPBACK, type RuleFile } from '../test/helpers/rules.js';
import { startTurret, type TurretProc } from '../test/helpers/turret.js';
import { YOUNG_GENERATION_FLAG } from '../src/cli/heap.js';

const TUNNELS = Number(process.env.BENCH_FAULTS_TUNNELS ?? 500);
const REQUESTS = Number(process.env.BENCH_FAULTS_REQUESTS ?? 2_000);
const HUNG = 200;
const SETTLE_MS = 3_000;

const RULES: RuleFile = {
  agents: ['agent-a', 'agent-b'],
  rules: [{ name: 'up', methods: ['read'], schemes: ['http', 'https'], hosts: ['up.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['up.turret.test'],
};

function fds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One intercepted tunnel with one request answered inside; left open and idle. */
async function openTunnel(t: TurretProc, up: FaultUpstream, auth: string, ca: Buffer, i: number): Promise<tls.TLSSocket> {
  const c = await rawConnect(t.port, `up.turret.test:${up.tlsPort}`, auth);
  if (c.status !== 200) throw new Error(`CONNECT ${i}: ${c.status}`);
  const s = tls.connect({ socket: c.socket, servername: 'up.turret.test', ca });
  await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
  const res = readResponse(s);
  s.write(`GET /ok/tunnel-${i} HTTP/1.1\r\nHost: up.turret.test:${up.tlsPort}\r\n\r\n`);
  const r = await res;
  if (r.status !== 200) throw new Error(`tunnel ${i}: ${r.status}`);
  return s;
}

async function benchTunnels(out: Record<string, number>): Promise<void> {
  const up = await startFaultUpstream();
  const t = await startTurret({
    node: [YOUNG_GENERATION_FLAG], // as the launchers start it (src/cli/heap.ts)
    rules: { 'r.yaml': RULES },
    args: ['--limit', `max_tunnels_per_agent=${TUNNELS + 10}`],
  });
  const open: tls.TLSSocket[] = [];
  try {
    const pid = t.proc.pid!;
    const auth = basic('agent-a', await agentToken(t, 'agent-a'));
    const ca = readFileSync(path.join(t.caDir, 'ca.crt'));
    // Warm-up: the leaf is minted and cached, the upstream pool has its connection.
    (await openTunnel(t, up, auth, ca, -1)).destroy();
    await sleep(SETTLE_MS);
    const fd0 = fds(pid);
    const rss0 = rssKb(pid);
    for (let i = 0; i < TUNNELS; i++) open.push(await openTunnel(t, up, auth, ca, i));
    await sleep(SETTLE_MS);
    const fd1 = fds(pid);
    const rss1 = rssKb(pid);
    out[`tunnels: idle intercepted tunnels`] = TUNNELS;
    out[`tunnels: turret fds before`] = fd0;
    out[`tunnels: turret fds with the tunnels open`] = fd1;
    out[`tunnels: fds per idle tunnel`] = (fd1 - fd0) / TUNNELS;
    out[`tunnels: turret RSS before (MB)`] = rss0 / 1024;
    out[`tunnels: turret RSS with the tunnels open (MB)`] = rss1 / 1024;
    out[`tunnels: KB RSS per idle tunnel`] = (rss1 - rss0) / TUNNELS;
  } finally {
    for (const s of open) s.destroy();
    await t.stop();
    await up.close();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** REQUESTS sequential GETs by agent B over one keep-alive connection; latencies in ms, sorted. */
async function agentB(t: TurretProc, up: FaultUpstream, auth: string): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const lat: number[] = [];
  try {
    for (let i = 0; i < REQUESTS; i++) {
      const t0 = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port: t.port,
            method: 'GET',
            path: `http://up.turret.test:${up.port}/ok/b-${i}`,
            headers: { host: `up.turret.test:${up.port}`, 'proxy-authorization': auth },
            agent,
          },
          (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`B got ${res.statusCode}`))));
          },
        );
        req.on('error', reject);
        req.end();
      });
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    agent.destroy();
  }
  return lat.sort((a, b) => a - b);
}

async function benchStarve(out: Record<string, number>): Promise<void> {
  const up = await startFaultUpstream();
  const t = await startTurret({ rules: { 'r.yaml': RULES }, node: [YOUNG_GENERATION_FLAG] });
  const hung: net.Socket[] = [];
  try {
    const authA = basic('agent-a', await agentToken(t, 'agent-a'));
    const authB = basic('agent-b', await agentToken(t, 'agent-b'));
    await agentB(t, up, authB); // warm-up
    const alone = await agentB(t, up, authB);
    for (let i = 0; i < HUNG; i++) {
      const s = net.connect(t.port, '127.0.0.1');
      s.on('error', () => {});
      s.write(`GET http://up.turret.test:${up.port}/hang/a-${i} HTTP/1.1\r\nHost: up.turret.test:${up.port}\r\nProxy-Authorization: ${authA}\r\n\r\n`);
      hung.push(s);
    }
    // A's pool is full (64 connections by default) and the rest of A's requests queue in Turret.
    await up.waitFor(() => up.seen.filter((p) => p.startsWith('/hang/a-')).length === 64, 'A holds 64 upstream connections', 30_000);
    const held = await agentB(t, up, authB);
    const stillHung = up.seen.filter((p) => p.startsWith('/hang/a-')).length;
    out['starve: agent B requests per phase'] = REQUESTS;
    out['starve: agent B p50 alone (ms)'] = percentile(alone, 50);
    out['starve: agent B p99 alone (ms)'] = percentile(alone, 99);
    out[`starve: agent B p50 with A's ${HUNG} hung (ms)`] = percentile(held, 50);
    out[`starve: agent B p99 with A's ${HUNG} hung (ms)`] = percentile(held, 99);
    out['starve: agent B max with A hung (ms)'] = held.at(-1) ?? NaN;
    out['starve: p99 ratio (with A / alone)'] = percentile(held, 99) / percentile(alone, 99);
    out["starve: A's requests at the upstream (held) during B's run"] = stillHung;
  } finally {
    for (const s of hung) s.destroy();
    await t.stop();
    await up.close();
  }
}

export async function benchFaults(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const only = process.env.BENCH_FAULTS_CASES?.split(',');
  if (!only || only.includes('tunnels')) await benchTunnels(out);
  if (!only || only.includes('starve')) await benchStarve(out);
  return out;
}
