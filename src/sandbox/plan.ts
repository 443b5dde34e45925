/**
 * What an isolated run shows and hides (docs/security.md): Turret's directories hidden, the
 * files the CA variables name readable, the working directory and --allow-write paths writable
 * — and who the command runs as when `turret run` is root.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { within } from './bwrap.js';

export class PlanError extends Error {}

/** Files of Turret's key directory that are never shown, whatever a variable names. */
const PRIVATE_FILES = new Set(['turret.key', 'ca.key', 'secrets.store.json', 'handles.jsonl', 'revocations.txt']);

export interface HiddenState {
  caDir: string;
  rulesDir: string;
  /** The audit log (null: off or unknown). */
  audit: string | null;
}

export interface FsPlan {
  cwd: string;
  writable: string[];
  hidden: string[];
  emptied: string[];
  visible: Map<string, Buffer>;
}

function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

export function fsPlan(cwd: string, allowWrite: readonly string[], state: HiddenState, env: Record<string, string>): FsPlan {
  const dir = real(cwd);
  const hidden = [real(state.caDir), real(state.rulesDir)];
  const emptied: string[] = [];
  if (state.audit) {
    const log = path.resolve(state.audit);
    const logDir = real(path.dirname(log));
    // A log directory that holds the working directory cannot be hidden without hiding the
    // work too: then the log and its rotated siblings are shown empty instead.
    if (within(dir, logDir)) {
      const base = path.basename(log);
      if (existsSync(logDir)) for (const n of readdirSync(logDir)) if (n === base || n.startsWith(`${base}.`)) emptied.push(path.join(logDir, n));
    } else hidden.push(logDir);
  }
  for (const h of hidden) {
    if (within(dir, h)) throw new PlanError(`the working directory ${dir} is inside Turret's ${h}, which the sandbox hides; run the command from another directory`);
  }
  const writable = allowWrite.map((w) => {
    const p = real(w);
    if (!existsSync(p)) throw new PlanError(`--allow-write ${w}: no such file or directory`);
    for (const h of hidden) if (within(p, h) || within(h, p)) throw new PlanError(`--allow-write ${w} overlaps Turret's ${h}, which the sandbox hides`);
    return p;
  });
  return { cwd: dir, writable, hidden: outermost(hidden.filter((h) => existsSync(h))), emptied, visible: visibleFiles(env, hidden) };
}

/** Hiding a directory hides everything below it: keep only the outermost of nested ones. */
function outermost(dirs: string[]): string[] {
  const unique = [...new Set(dirs)];
  return unique.filter((d) => !unique.some((o) => o !== d && within(d, o)));
}

/**
 * Files Turret's env builder points the agent at (the CA certificate, a CA bundle, a preload)
 * that live in a hidden directory: found as absolute paths in the values it produced, so a new
 * CA variable needs no change here. Never a private file, never anything holding a private key.
 */
export function visibleFiles(env: Record<string, string>, hidden: readonly string[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const v of Object.values(env)) {
    for (const tok of v.split(/[\s=,;]+/)) {
      if (!tok.startsWith('/') || out.has(tok)) continue;
      const p = path.resolve(tok);
      if (!hidden.some((h) => within(real(p), h)) || PRIVATE_FILES.has(path.basename(p))) continue;
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (!st.isFile() || st.size > 8 * 1024 * 1024) continue;
      const content = readFileSync(p);
      if (content.includes('PRIVATE KEY')) continue;
      out.set(p, content);
    }
  }
  return out;
}

export interface RunUser {
  name: string;
  uid: number;
  gid: number;
}

/** `--user NAME|UID` (root only). Never uid 0, never the owner of the key file. */
export function runUser(spec: string, keyFile: string): RunUser {
  let uid: number;
  let gid: number;
  let name = spec;
  const numeric = /^\d+$/.test(spec);
  try {
    uid = Number(execFileSync('id', ['-u', spec], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', spec], { encoding: 'utf8' }).trim());
  } catch {
    if (!numeric) throw new PlanError(`--user ${spec}: no such user`);
    uid = Number(spec);
    gid = Number(spec);
    name = spec;
  }
  if (uid === 0) throw new PlanError('--user must not be root: the command would be able to read the key files');
  try {
    if (statSync(keyFile).uid === uid) throw new PlanError(`--user ${spec} owns ${keyFile}; the command must run as a user that cannot read the key files`);
  } catch (e) {
    if (e instanceof PlanError) throw e;
  }
  return { name, uid, gid };
}

/** Whether `user` may use `dir` (search every parent; read, write and search `dir` itself). */
export function checkAccess(dir: string, user: RunUser, what: string): void {
  const can = (p: string, bits: number): boolean => {
    const st = statSync(p);
    const shift = st.uid === user.uid ? 6 : st.gid === user.gid ? 3 : 0;
    return ((st.mode >> shift) & bits) === bits;
  };
  const parts = dir.split('/').filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    const p = `/${parts.slice(0, i).join('/')}`;
    if (!can(p, 1)) throw new PlanError(`${what} ${dir}: user ${user.name} cannot reach it (${p} is not searchable for it); chown or chmod it, or choose another --user`);
  }
  if (!can(dir, 7)) throw new PlanError(`${what} ${dir}: user ${user.name} cannot write it; chown ${user.name} ${dir} (or chmod), or choose another --user`);
}
