/**
 * bubblewrap command lines for an isolated run (docs/security.md, "turret run").
 *
 * Two bwrap layers, because one cannot do both jobs without leaving a privileged helper inside:
 *
 * - outer: new user + network namespaces, root of that user namespace (uid 0 mapped to the run
 *   user, capabilities only over namespaces it owns). Nothing but loopback exists in the network
 *   namespace; inside.ts binds the proxy port, 80, 443 and 53 there and hands them out.
 * - inner (exec'd by the outer's shell once the sockets are handed over): new user, mount, PID,
 *   IPC, UTS and cgroup namespaces, the run user's uid, no capabilities, no further user
 *   namespaces; the host read-only; the working directory, a private /tmp and the operator's
 *   --allow-write paths writable; Turret's state hidden under empty tmpfs; the command.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Mounts {
  cwd: string;
  writable: readonly string[];
  /** Directories shown empty (CA/key dir, rules dir, the audit log's directory). */
  hidden: readonly string[];
  /** Single files shown empty (an audit log in a directory that cannot be hidden). */
  emptied: readonly string[];
  /**
   * Files made from data bwrap reads from an inherited descriptor: the CA certificate (and other
   * files the CA variables name) inside hidden directories, the stub resolver's resolv.conf.
   */
  data: ReadonlyArray<{ fd: number; dest: string }>;
}

const PRIVATE_DIRS = ['/tmp', '/run', '/var/tmp'];

/** The directory holding Turret's dist/ and node_modules/ (this file is dist/sandbox/bwrap.js). */
function installRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
}

export function outerArgs(): string[] {
  return ['--unshare-user', '--unshare-net', '--uid', '0', '--gid', '0', '--cap-add', 'ALL', '--die-with-parent', '--dev-bind', '/', '/'];
}

export function innerArgs(m: Mounts, uid: number, gid: number, infoFd: number): string[] {
  const a = ['--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', '--disable-userns'];
  a.push('--uid', String(uid), '--gid', String(gid), '--hostname', 'turret-run', '--die-with-parent', '--info-fd', String(infoFd));
  a.push('--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc');
  // Host daemons' sockets (D-Bus, container runtimes …) live under /run: a Unix socket on a
  // read-only filesystem can still be connected to, and it is not behind the network namespace.
  a.push('--tmpfs', '/tmp', '--tmpfs', '/run', '--tmpfs', '/var/tmp');
  // Turret's own install (the Node preload in dist/client/ and the undici it imports) must stay
  // readable when it lives under one of those private directories (a checkout in /tmp).
  const install = installRoot();
  if (PRIVATE_DIRS.some((d) => within(install, d))) a.push('--ro-bind', install, install);
  a.push('--bind', m.cwd, m.cwd);
  for (const w of m.writable) a.push('--bind', w, w);
  // Hidden after the writable binds: a CA directory inside the working directory stays hidden.
  for (const h of m.hidden) a.push('--tmpfs', h);
  for (const f of m.emptied) a.push('--ro-bind', '/dev/null', f);
  for (const d of m.data) a.push('--ro-bind-data', String(d.fd), d.dest);
  // Read-only once the visible files have their mount points: nothing can be created there.
  for (const h of m.hidden) a.push('--remount-ro', h);
  a.push('--chdir', m.cwd);
  return a;
}

/** True when `inner` is `outer` or below it. */
export function within(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * What the run needs from the kernel, said with the cause and the fix, from bwrap's own words.
 * The run never falls back to running unisolated by itself (--no-sandbox is the operator's call).
 */
export function explainFailure(stderr: string, bwrap: string, notFound: boolean): string {
  const fix = 'or pass --no-sandbox to run the command without isolation (it can then read what your user can read)';
  if (notFound)
    return `bubblewrap (${bwrap}) is not installed; install it (Debian/Ubuntu: apt-get install bubblewrap, Fedora: dnf install bubblewrap, or set TURRET_BWRAP to its path), ${fix}`;
  const said = stderr.trim().split('\n').slice(-2).join(' ').slice(0, 300);
  if (/user namespace|uid map|setting up uid|No permissions to creat|Operation not permitted|Permission denied/i.test(stderr)) {
    return `this system does not let an unprivileged process create user namespaces (bwrap said: ${said}). Enable them — sysctl kernel.unprivileged_userns_clone=1 (Debian), user.max_user_namespaces > 0, kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu 24.04+); in a container, run it with a seccomp/AppArmor profile that allows unshare(CLONE_NEWUSER) — ${fix}`;
  }
  return `bubblewrap could not create the sandbox (bwrap said: ${said || 'nothing'}); ${fix}`;
}
