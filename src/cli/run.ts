/**
 * `turret run --agent A [--ttl 1h] -- CMD ARGS`: run a command as an agent, isolated by default
 * (sandbox/, docs/security.md): new namespaces, only loopback inside, a bridge to Turret, its
 * state hidden, an unprivileged user when run as root. Its environment is an allow-list
 * (sandbox/env.ts) plus what the env builder produces, with handles issued for this run only.
 * When the command exits — or this process is told to stop — every handle issued for the run is
 * revoked. The command's exit code is returned (128 + signal number when a signal killed it).
 * `--no-sandbox` runs it without isolation, with a warning on every start.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, realpathSync, statSync } from 'node:fs';
import { constants, userInfo } from 'node:os';
import path from 'node:path';
import { KEY_FILE } from '../secrets/keys.js';
import { buildEnv, EnvError, parsePassEnv } from '../sandbox/env.js';
import { launch, probe, type Sandbox } from '../sandbox/launch.js';
import { checkAccess, fsPlan, PlanError, runUser, type RunUser } from '../sandbox/plan.js';
import { agentEnvironment, type EnvOptions } from './env.js';
import { caDir, DEFAULT_LISTEN, err, parseListen, rulesDir, UsageError } from './common.js';
import { revokeShared } from './shared-state.js';

export interface RunOptions extends EnvOptions {
  '--'?: string[];
  /** false with --no-sandbox. */
  sandbox?: boolean;
  user?: string;
  allowWrite?: string | string[];
  passEnv?: string | string[];
  audit?: string;
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export const UNSANDBOXED_WARNING =
  "turret run: WARNING: --no-sandbox: the command runs without isolation. It is cooperative only: it can ignore the proxy variables and connect anywhere, and it can read (and change) whatever your user can, including Turret's key files, rules and audit log.";

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)];
}

export async function runCommand(o: RunOptions): Promise<number> {
  const argv = o['--'] ?? [];
  if (argv.length === 0 || !argv[0]) throw new UsageError('turret run needs a command after "--": turret run --agent A -- CMD ARGS');
  const isolated = o.sandbox !== false;
  const listen = parseListen(o.proxy ?? process.env.TURRET_LISTEN ?? DEFAULT_LISTEN, '--proxy');
  // Inside, the proxy port is on the sandbox's own loopback; 53, 80 and 443 are the bridge's.
  const insidePort = [53, 80, 443].includes(listen.port) ? 8750 : listen.port;
  const bwrap = process.env.TURRET_BWRAP ?? 'bwrap';
  let user: RunUser | null = null;
  if (isolated) {
    if (process.getuid?.() === 0) {
      try {
        user = runUser(o.user ?? 'nobody', path.join(caDir(o), KEY_FILE));
      } catch (e) {
        if (e instanceof PlanError) throw new UsageError(e.message);
        throw e;
      }
    } else if (o.user !== undefined && o.user !== userInfo().username) {
      throw new UsageError('--user needs turret run to be started as root');
    }
    const missing = await probe(bwrap, user && { uid: user.uid, gid: user.gid });
    if (missing) throw new UsageError(`turret run cannot isolate the command: ${missing}`);
  } else {
    err(UNSANDBOXED_WARNING);
  }
  if (!findProgram(argv[0], process.env.PATH ?? '')) {
    err(`turret run: cannot start ${argv[0]}: ENOENT`);
    return 127;
  }
  const proxy = isolated ? `127.0.0.1:${insidePort}` : o.proxy;
  const built = await agentEnvironment({ ...o, proxy, ttl: o.ttl ?? '1h' }, 'run');
  // The revocation file beside the key file and, with shared_state, Redis (every replica sees it).
  const revokeAll = (): Promise<void> => revokeShared({ ...o, ca: built.keyDir }, built.issued, built.policy.settings);
  let code: number;
  try {
    const overrides: Record<string, string> = user ? { USER: user.name, LOGNAME: user.name } : {};
    const env = buildEnv({ host: process.env, produced: built.env, pass: parsePassEnv(o.passEnv), policy: built.policy, overrides });
    code = isolated ? await runIsolated(o, argv, env, built, listen, insidePort, user, bwrap) : await runPlain(argv, env);
  } catch (e) {
    await revokeAll();
    if (e instanceof EnvError || e instanceof PlanError) throw new UsageError(e.message);
    throw e;
  }
  await revokeAll();
  return code;
}

async function runIsolated(
  o: RunOptions,
  argv: string[],
  env: Record<string, string>,
  built: { token: string },
  listen: { host: string; port: number },
  insidePort: number,
  user: RunUser | null,
  bwrap: string,
): Promise<number> {
  const cwd = process.cwd();
  const audit = o.audit ?? process.env.TURRET_AUDIT ?? 'var/audit.jsonl';
  const fsp = fsPlan(cwd, list(o.allowWrite), { caDir: caDir(o), rulesDir: rulesDir(o), audit: audit === 'off' ? null : audit }, env);
  if (user) {
    checkAccess(fsp.cwd, user, 'the working directory');
    for (const w of fsp.writable) checkAccess(w, user, '--allow-write');
  }
  let resolvTarget = '/etc/resolv.conf';
  try {
    resolvTarget = realpathSync(resolvTarget);
  } catch {
    // a dangling link: bwrap reports it
  }
  const host = listen.host === '0.0.0.0' || listen.host === '' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  const agent = o.agent ?? '';
  const box = await launch({
    bwrap,
    argv,
    env,
    mounts: { cwd: fsp.cwd, writable: fsp.writable, hidden: fsp.hidden, emptied: fsp.emptied },
    visible: fsp.visible,
    resolvTarget,
    user: user && { uid: user.uid, gid: user.gid },
    proxyPortInside: insidePort,
    target: { host, port: listen.port, agent, token: built.token },
  });
  return forwardSignals(box);
}

/** Like the shell's lookup, so a missing program is 127 with or without a sandbox. */
function findProgram(name: string, searchPath: string): boolean {
  const ok = (p: string): boolean => {
    try {
      accessSync(p, fsConstants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (name.includes('/')) return ok(path.resolve(name));
  return searchPath.split(':').some((d) => d !== '' && ok(path.join(d, name)));
}

async function forwardSignals(box: Sandbox): Promise<number> {
  const handlers = FORWARDED.map((sig) => {
    const h = (): void => box.signal(sig);
    process.on(sig, h);
    return [sig, h] as const;
  });
  const code = await box.exit;
  for (const [sig, h] of handlers) process.off(sig, h);
  return code;
}

async function runPlain(argv: string[], env: Record<string, string>): Promise<number> {
  const child = spawn(argv[0] ?? '', argv.slice(1), { stdio: 'inherit', env });
  const handlers = FORWARDED.map((sig) => {
    const h = (): void => {
      child.kill(sig);
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  const code = await new Promise<number>((resolve) => {
    child.on('error', (e: Error & { code?: string }) => {
      err(`turret run: cannot start ${argv[0]}: ${e.code ?? 'error'}`);
      resolve(127);
    });
    child.on('exit', (c, sig) => resolve(c ?? 128 + (sig ? (constants.signals[sig] ?? 0) : 0)));
  });
  for (const [sig, h] of handlers) process.off(sig, h);
  return code;
}
