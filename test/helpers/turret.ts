/**
 * Starts the real `turret` CLI (dist/main.js, built by `npm test`'s pretest) as a child process
 * with a rules directory, CA directory and audit log in a fresh temp dir, on 127.0.0.1 with an
 * OS-chosen port. Collects stdout/stderr so tests can grep every output for secrets.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDirs, type RuleFiles } from './rules.js';

export { makeDirs };

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MAIN = path.join(ROOT, 'dist/main.js');

/** Environment without the CA-bundle and proxy variables the machine presets. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(https?_proxy|all_proxy|no_proxy|GIT_SSL_CAINFO|GIT_SSL_CAPATH|CURL_CA_BUNDLE|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|NODE_EXTRA_CA_CERTS|NODE_OPTIONS)$/i.test(k))
      delete env[k];
  }
  return { ...env, ...extra };
}

export interface TurretProc {
  dir: string;
  rulesDir: string;
  caDir: string;
  auditPath: string;
  port: number;
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  audit: () => Array<Record<string, unknown>>;
  auditText: () => string;
  cli: (args: string[], env?: Record<string, string>) => Promise<{ code: number; stdout: string; stderr: string }>;
  stop: () => Promise<void>;
}

export function runCli(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, ...args], { cwd: o.cwd ?? ROOT, env: o.env ?? cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(o.input ?? '');
  });
}

/** `caDir`: an existing CA and key directory (another replica's copy, or the same one after a restart). */
export async function startTurret(o: {
  /** Another build's dist/main.js (benchmarks compare two builds in one run). */
  main?: string;
  rules: RuleFiles;
  env?: Record<string, string>;
  args?: string[];
  caDir?: string;
  startTimeoutMs?: number;
  /** A command that runs turret (e.g. ['prlimit', '--nofile=128:128', '--']): turret's argv is appended. */
  prefix?: string[];
  /** Node's own flags, before turret's main (e.g. the launchers' young-generation ceiling). */
  node?: string[];
  /** Run turret's main itself, as the installed `turret` bin runs: its shebang line chooses node and node's flags. */
  bin?: boolean;
}): Promise<TurretProc> {
  const made = makeDirs(o.rules);
  const { dir, rulesDir } = made;
  const caDir = o.caDir ?? made.caDir;
  const auditPath = path.join(dir, 'audit.jsonl');
  const env = cleanEnv(o.env);
  // The admin listener gets an OS-chosen port too, so test files can run in parallel.
  const admin = (o.args ?? []).includes('--admin') ? [] : ['--admin', '127.0.0.1:0'];
  const [cmd, ...pre] = [...(o.prefix ?? []), ...(o.bin ? [] : [process.execPath, ...(o.node ?? [])]), o.main ?? MAIN];
  const proc = spawn(cmd!, [...pre, 'start', '--rules', rulesDir, '--ca', caDir, '--listen', '127.0.0.1:0', '--audit', auditPath, ...admin, ...(o.args ?? [])], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    // On timeout the process is killed: a caller whose before() failed has no handle to stop it,
    // and a live child would keep the test file from ever ending.
    const limit = o.startTimeoutMs ?? 20_000;
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`turret did not start in ${limit / 1000} s:\n${stderr}`));
    }, limit);
    proc.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
      const m = /"msg":"turret started".*?"listen":"[^"]*:(\d+)"/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`turret exited with ${code} before starting:\n${stderr}`));
    });
  });
  const auditText = (): string => (existsSync(auditPath) ? readFileSync(auditPath, 'utf8') : '');
  return {
    dir,
    rulesDir,
    caDir,
    auditPath,
    port,
    proc,
    stdout: () => stdout,
    stderr: () => stderr,
    auditText,
    // Complete lines only: a reader can see a batch while the writer is still appending it (the
    // text after the last newline is a record being written, not a torn one).
    audit: () => {
      const text = auditText();
      return text
        .slice(0, text.lastIndexOf('\n') + 1)
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    cli: (args, extra) => runCli([...args, '--rules', rulesDir, '--ca', caDir], { cwd: dir, env: cleanEnv({ ...o.env, ...extra }) }),
    stop: () =>
      new Promise<void>((resolve) => {
        // A process ended by a signal has exitCode null and signalCode set: it will never exit again.
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
        setTimeout(() => proc.kill('SIGKILL'), 5_000).unref();
      }),
  };
}

/** Wait until an audit record matches (the writer appends asynchronously). */
export async function waitForAudit(t: TurretProc, match: (r: Record<string, unknown>) => boolean, timeoutMs = 5_000): Promise<Record<string, unknown> | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const hit = t.audit().find(match);
    if (hit || Date.now() > end) return hit;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Wait for a condition that an event makes true (a request reached an upstream, a log line was
 * written): checked every 25 ms, bounded, and the failure says what never happened.
 */
export async function until(cond: () => boolean, what: string | (() => string), timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Wait for a line of Turret's log (stderr, after offset `from`) that matches `re`; returns the match. */
export async function waitForLog(t: TurretProc, re: RegExp, from = 0, timeoutMs = 10_000): Promise<string> {
  let m: RegExpExecArray | null = null;
  await until(
    () => (m = re.exec(t.stderr().slice(from))) !== null,
    () => `a log line ${re} in:\n${t.stderr().slice(from)}`,
    timeoutMs,
  );
  return (m as RegExpExecArray | null)?.[0] ?? '';
}

/** The proxy credential `turret env` prints for an agent (throws when there is none). */
export async function agentToken(t: TurretProc, agent: string): Promise<string> {
  const r = await t.cli(['env', '--agent', agent]);
  const tok = new RegExp(`HTTPS_PROXY='http://${agent}:([^@']+)@`).exec(r.stdout)?.[1];
  if (!tok) throw new Error(`turret env printed no credential for ${agent}: ${r.stderr}`);
  return decodeURIComponent(tok);
}

/** `turret run` arguments for `agent` against a started turret: its rules, CA and proxy port. */
export function runArgs(t: TurretProc, agent: string, extra: string[], cmd: string[]): string[] {
  return ['run', '--agent', agent, '--rules', t.rulesDir, '--ca', t.caDir, '--proxy', `127.0.0.1:${t.port}`, ...extra, '--', ...cmd];
}

/** Every output of a turret a secret could leak into: stdout, stderr, the audit log, the handle issuance log. */
export function turretOutputs(t: TurretProc): Array<[string, string]> {
  const issued = path.join(t.caDir, 'handles.jsonl');
  return [
    ['turret stdout', t.stdout()],
    ['turret stderr', t.stderr()],
    ['audit', t.auditText()],
    ['issuance log', existsSync(issued) ? readFileSync(issued, 'utf8') : ''],
  ];
}

/** Fails, naming the output and the secret, when any output holds any secret verbatim. */
export function assertNoSecrets(outputs: Array<[string, string]>, secrets: Record<string, string>): void {
  for (const [name, text] of outputs) for (const [what, value] of Object.entries(secrets)) assert.ok(!text.includes(value), `${name} must never contain ${what}`);
}
