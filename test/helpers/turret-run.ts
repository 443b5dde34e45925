/**
 * Runs client commands through the real `turret run` for the client-matrix tests, from a caller
 * environment that presets every trust and proxy setting to something WRONG (a preset must not win
 * over Turret's), and keeps every output so a test can grep all of them for secrets.
 */
import { chmodSync } from 'node:fs';
import { cleanEnv, runArgs, runCli, type TurretProc } from './turret.js';

/** Caller presets that would break the clients if they won over Turret's values. */
export const HOSTILE_PRESETS: Record<string, string> = {
  SSL_CERT_FILE: '/nonexistent/preset-ca.pem',
  CURL_CA_BUNDLE: '/nonexistent/preset-ca.pem',
  REQUESTS_CA_BUNDLE: '/nonexistent/preset-ca.pem',
  AWS_CA_BUNDLE: '/nonexistent/preset-ca.pem',
  PIP_CERT: '/nonexistent/preset-ca.pem',
  NPM_CONFIG_CAFILE: '/nonexistent/preset-ca.pem',
  GIT_SSL_CAINFO: '/nonexistent/preset-ca.pem',
  PIP_PROXY: 'http://127.0.0.1:9',
  NPM_CONFIG_HTTPS_PROXY: 'http://127.0.0.1:9',
  npm_config_proxy: 'http://127.0.0.1:9',
  GIT_HTTP_PROXY_AUTHMETHOD: 'anyauth',
};

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Runner {
  run(cmd: string[], extraEnv?: Record<string, string>): Promise<RunResult>;
  /** Every stdout and stderr so far. */
  outputs: string[];
}

/** Variables the clients need beyond what Turret produces; `turret run`'s environment is an allow-list. */
const PASS = ['GIT_TERMINAL_PROMPT', 'GIT_CONFIG_NOSYSTEM', 'AWS_EC2_METADATA_DISABLED'];

export function turretRunner(t: () => TurretProc, agent: string, work: string, env: Record<string, string>): Runner {
  const outputs: string[] = [];
  chmodSync(work, 0o777); // turret run (as root) runs the command as nobody, in a sandbox
  return {
    outputs,
    async run(cmd, extraEnv = {}) {
      const base = cleanEnv({ ...env, HOME: work, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', AWS_EC2_METADATA_DISABLED: 'true', ...HOSTILE_PRESETS, ...extraEnv });
      // `npm test` hands its own npm_config_* (userconfig, cache, registry …) to the tests.
      for (const k of Object.keys(base)) if (/^npm_/i.test(k) && !(k in HOSTILE_PRESETS) && !(k in extraEnv)) delete base[k];
      const tt = t();
      const pass = ['--pass-env', [...PASS, ...Object.keys(extraEnv)].join(',')];
      const r = await runCli(runArgs(tt, agent, pass, cmd), {
        cwd: work,
        env: base,
      });
      outputs.push(r.stdout, r.stderr);
      return r;
    },
  };
}
