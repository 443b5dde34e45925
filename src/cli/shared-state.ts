/**
 * Opens the state `settings.shared_state` names (state/redis.ts), for the proxy and for the
 * commands that revoke or list handles. Without the setting, the local state is used: this
 * process's buckets and the files beside the key file, exactly as before.
 */
import { readFile } from 'node:fs/promises';
import { loadPolicy } from '../config/load.js';
import { createLogger, type Logger } from '../core/log.js';
import type { Settings, SharedStateSettings } from '../policy/types.js';
import { loadKeyRing } from '../secrets/keys.js';
import { SecretValues } from '../secrets/sources.js';
import { SecretStore, storeKey } from '../secrets/store.js';
import { LocalState } from '../state/local.js';
import { RedisState } from '../state/redis.js';
import type { SharedState } from '../state/types.js';
import { caDir, rulesDir, UsageError, type CommonOptions } from './common.js';

async function credentials(s: SharedStateSettings, values: () => Promise<SecretValues>): Promise<{ password: string | null; ca: string | null }> {
  let password: string | null = null;
  if (s.password) {
    const v = (await values()).load('shared_state.password', s.password);
    if (!v) throw new UsageError(`settings.shared_state.password: its source (${(await values()).describe(s.password)}) gives no value`);
    password = v.reveal();
  }
  let ca: string | null = null;
  if (s.caFile) {
    try {
      ca = await readFile(s.caFile, 'utf8');
    } catch (e) {
      throw new UsageError(`settings.shared_state.ca_file ${s.caFile} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`settings.shared_state.ca_file ${s.caFile} holds no PEM certificate`);
  }
  return { password, ca };
}

/**
 * The proxy's state. Never waits for Redis: when it cannot be reached yet, production refuses
 * traffic (503 state_unavailable, /readyz not ready) and development serves from local state,
 * until ioredis has reconnected.
 */
export async function openProxyState(o: { settings: Settings; local: LocalState; values: SecretValues; production: boolean; log: Logger }): Promise<SharedState> {
  const s = o.settings.sharedState;
  if (!s) return o.local;
  const credentialsOf = await credentials(s, () => Promise.resolve(o.values));
  const st = new RedisState({ settings: s, credentials: credentialsOf, local: o.local, production: o.production, log: o.log, server: true });
  await st.start(Math.max(2000, s.timeoutMs * 2));
  return st;
}

/** The state for one CLI command (`handle revoke|list|issue`, `env`, `run`); close it when done. */
export async function openCliState(o: CommonOptions, settings?: Settings): Promise<SharedState> {
  const dir = caDir(o);
  const local = new LocalState(dir);
  const s = (settings ?? (await loadPolicy(rulesDir(o))).settings).sharedState;
  if (!s) return local;
  const values = async (): Promise<SecretValues> => {
    // The key ring (and store) only when the password lives in the store.
    if (s.password?.kind !== 'store') return new SecretValues(process.env, null);
    const ring = await loadKeyRing(dir, false);
    return new SecretValues(process.env, new SecretStore(dir, storeKey(ring)));
  };
  const st = new RedisState({ settings: s, credentials: await credentials(s, values), local, production: true, log: createLogger({ level: 'warn' }), server: false });
  try {
    await st.start();
  } catch (e) {
    await st.close();
    throw e;
  }
  return st;
}

/**
 * Revokes through the shared state, after writing the local revocation file first: when Redis
 * cannot be reached the command still fails (exit 1: the other replicas do not know yet), but
 * this machine's replicas and a later `handle revoke` retry have the ids.
 */
export async function revokeShared(o: CommonOptions, targets: ReadonlyArray<{ id: string; exp: number }>, settings?: Settings): Promise<void> {
  const local = new LocalState(caDir(o));
  for (const t of targets) await local.revoke(t.id, t.exp);
  const state = await openCliState(o, settings);
  try {
    if (state.kind === 'local') return;
    for (const t of targets) await state.revoke(t.id, t.exp);
  } finally {
    await state.close();
  }
}
