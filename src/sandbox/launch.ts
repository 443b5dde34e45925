/**
 * Starting a command in a run sandbox and running the bridge for it (bwrap.ts has the layout,
 * relay.ts the bridge). Order of events:
 *
 *   1. bwrap (outer) → inside.js binds the proxy port, 80, 443, 53 and sends the sockets here;
 *   2. the relay starts accepting on them; "go" tells inside.js to exit;
 *   3. the outer shell closes the IPC descriptor and execs bwrap (inner) → the command.
 *
 * The files the command may read from inside hidden directories (the CA certificate …) and the
 * stub resolver's resolv.conf are handed to bwrap as data on inherited pipes (--ro-bind-data),
 * so the run user never needs a path to Turret's directories.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import type dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { explainFailure, innerArgs, outerArgs, type Mounts } from './bwrap.js';
import { startRelay, type RelayHandles, type RelayTarget } from './relay.js';

export interface SandboxPlan {
  bwrap: string;
  argv: string[];
  env: Record<string, string>;
  mounts: Omit<Mounts, 'data'>;
  /** Files shown read-only inside hidden directories: destination → content. */
  visible: Map<string, Buffer>;
  /** /etc/resolv.conf's real path (it may be a symlink). */
  resolvTarget: string;
  /** Switch to this user first (turret run as root); null keeps the caller's. */
  user: { uid: number; gid: number } | null;
  proxyPortInside: number;
  target: RelayTarget;
}

export interface Sandbox {
  exit: Promise<number>;
  /** Deliver a signal to the command (not to bwrap, which would not pass it on). */
  signal(sig: NodeJS.Signals): void;
}

const INSIDE = fileURLToPath(new URL('./inside.js', import.meta.url));
const INFO_FD = 4;
const FIRST_DATA_FD = 5;
const SCRIPT =
  'n="$1"; i="$2"; p="$3"; shift 3; env -u NODE_OPTIONS -u NODE_EXTRA_CA_CERTS "$n" "$i" "$p" || exit 125; exec 3>&-; unset NODE_CHANNEL_FD NODE_CHANNEL_SERIALIZATION_MODE; exec "$@"';

/** null when isolation works here; otherwise what is missing and how to fix it. */
export function probe(bwrap: string, user: SandboxPlan['user']): Promise<string | null> {
  const args = [
    ...outerArgs(),
    '--',
    bwrap,
    '--unshare-user',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--disable-userns',
    '--ro-bind',
    '/',
    '/',
    '--proc',
    '/proc',
    '--',
    'true',
  ];
  return new Promise((resolve) => {
    execFile(bwrap, args, { ...(user ?? {}), timeout: 20_000 }, (e, _out, stderr) => {
      if (!e) return resolve(null);
      resolve(explainFailure(String(stderr), bwrap, (e as { code?: unknown }).code === 'ENOENT'));
    });
  });
}

export async function launch(plan: SandboxPlan): Promise<Sandbox> {
  const data = [...plan.visible.entries(), [plan.resolvTarget, Buffer.from('nameserver 127.0.0.1\noptions attempts:1\n')] as const];
  const mounts: Mounts = { ...plan.mounts, data: data.map(([dest], k) => ({ fd: FIRST_DATA_FD + k, dest })) };
  const inner = innerArgs(mounts, plan.user?.uid ?? process.getuid?.() ?? 0, plan.user?.gid ?? process.getgid?.() ?? 0, INFO_FD);
  const args = [...outerArgs(), '--', '/bin/sh', '-c', SCRIPT, 'turret-run', process.execPath, INSIDE, String(plan.proxyPortInside), plan.bwrap, ...inner, '--', ...plan.argv];
  const stdio: Array<'inherit' | 'ipc' | 'pipe'> = ['inherit', 'inherit', 'inherit', 'ipc', 'pipe', ...data.map(() => 'pipe' as const)];
  const child = spawn(plan.bwrap, args, { stdio, env: plan.env, ...(plan.user ?? {}) });
  data.forEach(([, content], k) => {
    const w = child.stdio[FIRST_DATA_FD + k] as NodeJS.WritableStream & { on(e: 'error', f: () => void): void };
    w.on('error', () => {});
    w.end(content);
  });
  let info = '';
  (child.stdio[INFO_FD] as NodeJS.ReadableStream).on('data', (c: Buffer) => (info += c.toString('utf8')));
  const exit = new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('exit', (c, sig) => resolve(c ?? 128 + (sig ? (constants.signals[sig] ?? 0) : 0)));
  });
  const relay = await handOver(child, exit, plan.target);
  void exit.then(() => relay?.close());
  return { exit, signal: (sig) => deliver(child, info, sig) };
}

/** Collect the four sockets from inside.js, start the relay, tell inside.js to go. */
function handOver(child: ChildProcess, exit: Promise<number>, target: RelayTarget): Promise<ReturnType<typeof startRelay> | null> {
  return new Promise((resolve) => {
    const got: Partial<RelayHandles> = {};
    const onMessage = (m: unknown, handle: unknown): void => {
      const kind = (m as { kind?: string } | null)?.kind;
      if (kind === 'proxy' || kind === 'http' || kind === 'https') got[kind] = handle as net.Server;
      else if (kind === 'dns') got.dns = handle as dgram.Socket;
      if (!got.proxy || !got.http || !got.https || !got.dns) return;
      child.off('message', onMessage);
      const relay = startRelay(got as RelayHandles, target);
      child.send('go');
      // Past this point the channel only leads to the command's side: nothing it says is read.
      child.channel?.unref();
      resolve(relay);
    };
    child.on('message', onMessage);
    void exit.then(() => resolve(null));
  });
}

function deliver(child: ChildProcess, info: string, sig: NodeJS.Signals): void {
  // bwrap's init (pid 1 inside) ignores what it has no handler for; the command is its child.
  try {
    const init = (JSON.parse(info) as { 'child-pid'?: number })['child-pid'];
    const kids = init
      ? readFileSync(`/proc/${init}/task/${init}/children`, 'utf8')
          .trim()
          .split(/\s+/)
          .map(Number)
          .filter((n) => n > 0)
      : [];
    if (kids.length > 0) {
      for (const pid of kids) process.kill(pid, sig);
      return;
    }
  } catch {
    // not started yet, or already gone: fall through
  }
  child.kill(sig);
}
