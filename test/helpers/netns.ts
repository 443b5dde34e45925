/**
 * A network namespace that plays an agent container: a veth pair to the root namespace, a
 * default route towards the host, and an nftables table in the root namespace that redirects
 * the agent's tcp 80/443 to Turret's transparent port and drops everything else it sends (so
 * Turret is the only way out, as deploy/nftables/turret-transparent.nft sets up for a bridge).
 *
 * Nothing leaves the machine: the agent's only route ends in the root namespace, whose
 * forwarding is refused by the table, and every name is resolved by Turret's dns_hosts.
 * Names (netns, veth, nft table) and the /30 are unique per run; `teardown` removes them all and
 * never throws, so it is safe in `after` whatever failed.
 *
 * Needs root, `ip` (iproute2) and `nft` (nftables); `requireNetTools` fails loudly without them
 * (.ci/run installs both), because a skipped container-network test proves nothing.
 */
import { parseCurlOutput, type CurlResult } from './curl.js';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { cleanEnv, ROOT } from './turret.js';

export const SHIPPED_NFT = path.join(ROOT, 'deploy/nftables/turret-transparent.nft');

/**
 * deploy/nftables/turret-transparent.nft with its defines (and table name) set for one run:
 * the test confines the agent with the very rules operators load.
 */
export function shippedRules(v: { table: string; agentIf: string; agentNet: string; turretAddr: string; proxyPort: number; transparentPort: number }): string {
  const values: Record<string, string> = {
    AGENT_IF: `"${v.agentIf}"`,
    AGENT_NET: v.agentNet,
    TURRET_ADDR: v.turretAddr,
    PROXY_PORT: String(v.proxyPort),
    TRANSPARENT_PORT: String(v.transparentPort),
  };
  let text = readFileSync(SHIPPED_NFT, 'utf8');
  for (const [k, val] of Object.entries(values)) {
    const re = new RegExp(`^define ${k} = .*$`, 'm');
    if (!re.test(text)) throw new Error(`${SHIPPED_NFT} has no "define ${k} = …" line`);
    text = text.replace(re, `define ${k} = ${val}`);
  }
  const tables = text.match(/\bturret_transparent\b/g)?.length ?? 0;
  if (tables !== 4) throw new Error(`${SHIPPED_NFT}: expected the table name turret_transparent 4 times, found ${tables}`);
  return text.replace(/\bturret_transparent\b/g, v.table);
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], input?: string, timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: cleanEnv(), stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout?.on('data', (c: Buffer) => (stdout += c.toString('latin1')));
    p.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    // A program that exits without reading its input must not fail the test with EPIPE.
    p.stdin?.on('error', () => {});
    p.stdin?.end(input);
  });
}

async function must(cmd: string, args: string[], input?: string): Promise<void> {
  const r = await run(cmd, args, input);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

/** Throws with a clear message unless this process can create namespaces and nftables rules. */
export function requireNetTools(): void {
  const missing: string[] = [];
  if (typeof process.getuid === 'function' && process.getuid() !== 0) missing.push('root (uid 0) to create network namespaces');
  if (spawnSync('ip', ['netns', 'list']).status !== 0) missing.push('`ip netns` (Debian package iproute2)');
  if (spawnSync('nft', ['--version']).status !== 0) missing.push('`nft` (Debian package nftables)');
  if (missing.length > 0) {
    throw new Error(`container-network tests need ${missing.join(', ')}; .ci/run installs them (apt-get install iproute2 nftables)`);
  }
}

export interface AgentNet {
  ns: string;
  hostIf: string;
  /** The agent's end of the veth (inside the namespace). */
  nsIf: string;
  table: string;
  /** Root-namespace end of the veth (the agent's gateway). */
  hostAddr: string;
  /** The agent's address. */
  agentAddr: string;
  /** Install the redirect + drop table: agent tcp 80/443 → transparentPort; only Turret's ports are reachable. */
  confine(o: { transparentPort: number; proxyPort: number }): Promise<void>;
  /** Run a program inside the namespace. */
  exec(cmd: string, args: string[], timeoutMs?: number): Promise<Run>;
  teardown(): Promise<void>;
}

export async function createAgentNet(): Promise<AgentNet> {
  const id = randomBytes(3).toString('hex');
  const ns = `trt-agent-${id}`;
  const hostIf = `trt${id}h`; // IFNAMSIZ: at most 15 characters
  const nsIf = `trt${id}n`;
  const table = `trt_${id}`;
  const third = randomInt(0, 256);
  const base = randomInt(0, 64) * 4;
  const hostAddr = `10.234.${third}.${base + 1}`;
  const agentAddr = `10.234.${third}.${base + 2}`;
  let tableAdded = false;
  const net: AgentNet = {
    ns,
    hostIf,
    nsIf,
    table,
    hostAddr,
    agentAddr,
    async confine({ transparentPort, proxyPort }) {
      tableAdded = true;
      await must('nft', ['-f', '-'], shippedRules({ table, agentIf: hostIf, agentNet: `10.234.${third}.${base}/30`, turretAddr: hostAddr, proxyPort, transparentPort }));
    },
    exec: (cmd, args, timeoutMs) => run('ip', ['netns', 'exec', ns, cmd, ...args], undefined, timeoutMs),
    async teardown() {
      // Every step runs even when an earlier one fails (a half-built setup is still removed).
      if (tableAdded) await run('nft', ['delete', 'table', 'inet', table]).catch(() => undefined);
      await run('ip', ['link', 'del', hostIf]).catch(() => undefined);
      await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    },
  };
  try {
    await must('ip', ['netns', 'add', ns]);
    await must('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    await must('ip', ['link', 'set', nsIf, 'netns', ns]);
    await must('ip', ['addr', 'add', `${hostAddr}/30`, 'dev', hostIf]);
    await must('ip', ['link', 'set', hostIf, 'up']);
    await must('ip', ['-n', ns, 'addr', 'add', `${agentAddr}/30`, 'dev', nsIf]);
    await must('ip', ['-n', ns, 'link', 'set', nsIf, 'up']);
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // Everything the agent sends goes to the host, as in a container whose gateway is the bridge.
    await must('ip', ['-n', ns, 'route', 'add', 'default', 'via', hostAddr]);
  } catch (e) {
    await net.teardown();
    throw e;
  }
  return net;
}

/** The network objects of a run still present (for asserting teardown). */
export async function leftovers(n: Pick<AgentNet, 'ns' | 'hostIf' | 'table'>): Promise<string[]> {
  const out: string[] = [];
  if ((await run('ip', ['netns', 'list'])).stdout.split('\n').some((l) => l.split(' ')[0] === n.ns)) out.push(`netns ${n.ns}`);
  if ((await run('ip', ['link', 'show', n.hostIf])).code === 0) out.push(`link ${n.hostIf}`);
  if ((await run('nft', ['list', 'table', 'inet', n.table])).code === 0) out.push(`nft table ${n.table}`);
  return out;
}

/** curl inside the namespace, with the clean environment and parsing of test/helpers/curl.ts. */
export async function curlIn(n: AgentNet, args: string[]): Promise<CurlResult> {
  const r = await n.exec('curl', ['-sS', '-i', '--max-time', '15', '--noproxy', '', ...args], 30_000);
  return parseCurlOutput(r.code, r.stdout, r.stderr);
}

/**
 * Raw bytes from inside the namespace to host:port (a Node one-liner: curl cannot send two Host
 * headers or a ClientHello without SNI on purpose). Returns what came back before the close or
 * the timeout.
 */
export async function rawIn(n: AgentNet, host: string, port: number, payload: string, waitMs = 3_000): Promise<string> {
  const script = `
const s = require('node:net').connect(${port}, ${JSON.stringify(host)});
let out = '';
s.on('data', (c) => (out += c.toString('latin1')));
s.on('error', (e) => { out += '\\n[error ' + e.code + ']'; });
s.on('close', () => { process.stdout.write(out); process.exit(0); });
s.write(Buffer.from(${JSON.stringify(Buffer.from(payload, 'latin1').toString('base64'))}, 'base64'));
setTimeout(() => { process.stdout.write(out + '\\n[timeout]'); process.exit(0); }, ${waitMs});
`;
  const r = await n.exec(process.execPath, ['-e', script], waitMs + 10_000);
  return r.stdout;
}
