#!/usr/bin/env -S node --max-semi-space-size=64
/**
 * Process wiring only: run the CLI, map failures to exit codes (0 ok, 1 runtime failure,
 * 2 bad usage or configuration), print messages without stack traces for expected errors.
 */
import { runCli } from './cli/index.js';

/** An error says its own exit code (ConfigError, UsageError, CaError, KeyFileError: 2); anything else is 1. */
function exitCodeFor(e: unknown): number {
  const code = (e as { exitCode?: unknown } | null)?.exitCode;
  return typeof code === 'number' && Number.isInteger(code) && code > 0 ? code : 1;
}

runCli(process.argv).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (e: unknown) => {
    const code = exitCodeFor(e);
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`turret: ${msg}\n`);
    if (code === 1 && process.env.TURRET_DEBUG) process.stderr.write(`${(e as Error)?.stack ?? ''}\n`);
    process.exitCode = code;
  },
);
