#!/usr/bin/env node
/**
 * Process wiring only: run the CLI, map failures to exit codes (0 ok, 1 runtime failure,
 * 2 bad usage or configuration), print messages without stack traces for expected errors.
 */
import { runCli } from './cli/index.js';
import { ConfigError } from './config/yaml.js';
import { CaError } from './tls/ca.js';
import { KeyFileError } from './secrets/keys.js';

function exitCodeFor(e: unknown): number {
  if (e instanceof ConfigError) return 2;
  const name = (e as Error)?.name;
  if (name === 'UsageError' || name === 'CACError') return 2;
  if (e instanceof CaError || e instanceof KeyFileError) return 2;
  return 1;
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
