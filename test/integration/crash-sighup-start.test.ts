/**
 * A SIGHUP (reload) that arrives while Turret starts (attack review, crashrev2): a supervisor's
 * reload right after a restart, a configuration push. Until the reload handler was installed,
 * Node's default for SIGHUP ended the process; in worker mode it ended the primary, or a worker
 * still starting (the primary forwarded it), which was then replaced as if it had crashed. Now a
 * starting process remembers it and reloads once started; the primary forwards it to a worker
 * only once that worker listens.
 *
 * The signal is sent at Turret's first log line, which every start writes before its reload
 * handler exists.
 */
import { afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { cleanEnv, MAIN, makeDirs, until } from '../helpers/turret.js';
import { plainWsRules } from '../helpers/rules.js';

let proc: ChildProcess | null = null;

afterEach(async () => {
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  }
});

/** Starts turret; sends SIGHUP to it when a stderr line matches `at`. Returns its stderr (a getter). */
function startAndHup(args: string[], at: RegExp): { p: ChildProcess; err: () => string } {
  const { dir, rulesDir, caDir } = makeDirs({ 'r.yaml': plainWsRules() });
  const p = spawn(
    process.execPath,
    [MAIN, 'start', '--rules', rulesDir, '--ca', caDir, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--audit', path.join(dir, 'audit.jsonl'), '--no-watch', ...args],
    {
      cwd: dir,
      env: cleanEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  proc = p;
  let err = '';
  let sent = false;
  p.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
    if (!sent && at.test(err)) {
      sent = true;
      p.kill('SIGHUP');
    }
  });
  return { p, err: () => err };
}

async function stopsCleanly(p: ChildProcess, err: () => string): Promise<void> {
  const exited = once(p, 'exit');
  p.kill('SIGTERM');
  const [code, signal] = (await exited) as [number | null, string | null];
  assert.deepEqual([code, signal], [0, null], err().slice(-2000));
}

it('one process: a SIGHUP during its start is a reload once started, not the end of the process', async () => {
  const { p, err } = startAndHup([], /"msg"/);
  await until(
    () => /"msg":"turret started"/.test(err()) || p.exitCode !== null || p.signalCode !== null,
    () => `the start: ${err()}`,
  );
  assert.equal(p.signalCode, null, `ended by ${p.signalCode}: ${err()}`);
  await until(
    () => /"msg":"rules reloaded","why":"SIGHUP while starting"/.test(err()),
    () => `the reload: ${err()}`,
  );
  await stopsCleanly(p, err);
});

it('--workers 2: a SIGHUP while the workers start ends none of them; each reloads once it listens', async () => {
  // The first line a worker writes comes before its reload handler exists.
  const { p, err } = startAndHup(['--workers', '2'], /"msg":"client connections capped"/);
  await until(
    () => /"msg":"turret workers started"/.test(err()) || p.exitCode !== null || p.signalCode !== null,
    () => `the start: ${err()}`,
    60_000,
  );
  assert.equal(p.signalCode, null, `ended by ${p.signalCode}: ${err()}`);
  await until(
    () => (err().match(/"msg":"rules reloaded"/g) ?? []).length === 2,
    () => `a reload in each worker: ${err()}`,
  );
  assert.doesNotMatch(err(), /"msg":"worker exited/);
  await stopsCleanly(p, err);
});
