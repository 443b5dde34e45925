/**
 * `turret env --agent NAME`: the shell exports an agent needs — proxy URL with its credential,
 * NO_PROXY for loopback, the trust for every common client, the Node preload (client-env.ts,
 * client-files.ts), and a fresh handle for each secret with `env:` names that some rule of the
 * agent could use (policy/usable.ts). Every handle issued is recorded in the issuance log (no
 * handle value).
 */
import { existsSync } from 'node:fs';
import { loadPolicy } from '../config/load.js';
import type { Policy } from '../policy/types.js';
import { secretsUsableBy } from '../policy/usable.js';
import { caPaths } from '../tls/ca.js';
import { expectedToken } from '../proxy/stages/identify.js';
import { issueHandle, parseTtl, type HandleClaims } from '../secrets/handles.js';
import { loadKeyRing } from '../secrets/keys.js';
import { SecretValues } from '../secrets/sources.js';
import { SecretStore, storeKey } from '../secrets/store.js';
import { openCliState } from './shared-state.js';
import { clientVariables, competingNames } from './client-env.js';
import { ensureClientFiles } from './client-files.js';
import { caDir, DEFAULT_LISTEN, err, out, rulesDir, UsageError, type CommonOptions } from './common.js';

export interface EnvOptions extends CommonOptions {
  agent?: string;
  ttl?: string;
  proxy?: string;
}

export interface AgentEnvironment {
  env: Record<string, string>;
  /** Claims of the handles issued (for `turret run` to revoke). */
  issued: HandleClaims[];
  keyDir: string;
  /** The agent's proxy credential (the run bridge announces connections with it). */
  token: string;
  policy: Policy;
}

export async function agentEnvironment(o: EnvOptions, by: string): Promise<AgentEnvironment> {
  if (!o.agent) throw new UsageError(`turret ${by} needs --agent NAME`);
  const ttl = parseTtl(String(o.ttl ?? '8h'));
  if (ttl === null) throw new UsageError(`--ttl must be a duration like 30m, 8h or 2d, got "${o.ttl}"`);
  const policy = await loadPolicy(rulesDir(o));
  if (!policy.agents.has(o.agent)) throw new UsageError(`agent "${o.agent}" is not defined in the rules`);
  const dir = caDir(o);
  const ring = await loadKeyRing(dir, true);
  const token = expectedToken(policy, ring, new SecretValues(process.env, new SecretStore(dir, storeKey(ring))), o.agent);
  if (!token) throw new UsageError(`agent "${o.agent}" has a token source with no value; set it before printing its environment`);
  const listen = o.proxy ?? process.env.TURRET_LISTEN ?? DEFAULT_LISTEN;
  const proxy = `http://${encodeURIComponent(o.agent)}:${encodeURIComponent(token)}@${listen}`;
  if (!existsSync(caPaths(dir).cert)) throw new UsageError(`no CA certificate at ${caPaths(dir).cert}: run turret ca init (or start turret once) with --ca ${dir}`);
  const files = await ensureClientFiles(dir, policy.settings.upstreamCaFile);
  for (const w of files.warnings) err(`turret ${by}: ${w}`);
  // `turret run` builds its environment from an allow-list: nothing of the caller's is combined in.
  const env = clientVariables(files, proxy, by === 'env' ? process.env : {});
  const issued: HandleClaims[] = [];
  const state = await openCliState(o, policy.settings);
  try {
    for (const def of secretsUsableBy(policy, o.agent)) {
      if (def.env.length === 0) continue;
      const { handle, claims } = issueHandle(ring, { agent: o.agent, secret: def.name, ttlSeconds: ttl });
      await state.recordIssued(claims, by);
      issued.push(claims);
      for (const name of def.env) env[name] = handle;
    }
  } finally {
    await state.close();
  }
  return { env, issued, keyDir: dir, token, policy };
}

function shellQuote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

export async function envCommand(o: EnvOptions): Promise<void> {
  const { env } = await agentEnvironment(o, 'env');
  // A preset spelling the tools would prefer over Turret's (NPM_CONFIG_CAFILE, PIP_PROXY …).
  for (const k of competingNames(process.env, env)) out(`unset ${k}`);
  for (const [k, v] of Object.entries(env)) out(`export ${k}=${shellQuote(v)}`);
}
