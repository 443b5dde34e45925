/**
 * `turret handle issue|list|revoke`. Issue prints an opaque handle (and records its id, never
 * the handle, in the issuance log); list shows id, agent, secret, times and status; revoke takes
 * a handle id, a handle, or --agent/--secret to revoke every live handle the log lists for them.
 * Revocations go to the revocation file beside the key file and, when settings name
 * shared_state, to Redis, which every replica reads (state/redis.ts).
 */
import path from 'node:path';
import { loadPolicy } from '../config/load.js';
import { issueHandle, openHandle, parseTtl } from '../secrets/handles.js';
import type { IssuedRecord } from '../secrets/issued.js';
import { loadKeyRing } from '../secrets/keys.js';
import type { SharedState } from '../state/types.js';
import { openCliState, revokeShared } from './shared-state.js';
import { caDir, out, rulesDir, UsageError, type CommonOptions } from './common.js';

export interface HandleOptions extends CommonOptions {
  agent?: string;
  secret?: string;
  ttl?: string;
  all?: boolean;
}

function status(r: IssuedRecord, revoked: SharedState, now: number): 'active' | 'expired' | 'revoked' {
  if (revoked.isRevoked(r.id)) return 'revoked';
  return r.exp <= now ? 'expired' : 'active';
}

const iso = (s: number): string => new Date(s * 1000).toISOString().replace(/\.000Z$/, 'Z');

export async function handleCommand(action: string, target: string | undefined, o: HandleOptions): Promise<void> {
  const dir = caDir(o);
  switch (action) {
    case 'issue': {
      if (!o.agent || !o.secret) throw new UsageError('turret handle issue needs --agent NAME and --secret NAME');
      const ttl = parseTtl(String(o.ttl ?? '8h'));
      if (ttl === null) throw new UsageError(`--ttl must be a duration like 30m, 8h or 2d (at most 366d), got "${o.ttl}"`);
      const policy = await loadPolicy(rulesDir(o));
      if (!policy.agents.has(o.agent)) throw new UsageError(`agent "${o.agent}" is not defined in the rules`);
      if (!policy.secrets.has(o.secret)) throw new UsageError(`secret "${o.secret}" is not defined in the rules`);
      const ring = await loadKeyRing(dir, true);
      const { handle, claims } = issueHandle(ring, { agent: o.agent, secret: o.secret, ttlSeconds: ttl });
      const state = await openCliState(o, policy.settings);
      try {
        await state.recordIssued(claims, 'cli');
      } finally {
        await state.close();
      }
      out(handle);
      return;
    }
    case 'list': {
      const revoked = await openCliState(o);
      const now = Math.floor(Date.now() / 1000);
      let records: IssuedRecord[];
      try {
        records = await revoked.listIssued();
      } finally {
        await revoked.close();
      }
      out(['ID', 'AGENT', 'SECRET', 'ISSUED', 'EXPIRES', 'STATUS', 'BY'].join('\t'));
      for (const r of records) {
        const st = status(r, revoked, now);
        if (!o.all && st !== 'active') continue;
        if ((o.agent && r.agent !== o.agent) || (o.secret && r.secret !== o.secret)) continue;
        out([r.id, r.agent, r.secret, iso(r.iat), iso(r.exp), st, r.by].join('\t'));
      }
      return;
    }
    case 'revoke': {
      let revoked: SharedState;
      try {
        revoked = await openCliState(o);
      } catch (e) {
        // Redis unreachable: an explicit id or handle still goes to the local file (exit 1 all the same).
        if (target && !(e instanceof UsageError)) {
          await revokeShared(o, await explicitTarget(target, dir)).catch(() => {});
          throw new Error(`${(e as Error).message}; the revocation is in ${path.join(dir, 'revocations.txt')} only: run the same command again once Redis is reachable`);
        }
        throw e;
      }
      try {
        await revokeTargets(revoked, target, o, dir);
      } finally {
        await revoked.close();
      }
      return;
    }
    default:
      throw new UsageError(`unknown action "handle ${action}"; use: issue | list | revoke`);
  }
}

async function revokeTargets(revoked: SharedState, target: string | undefined, o: HandleOptions, dir: string): Promise<void> {
  const now = Math.floor(Date.now() / 1000);
  let targets: Array<{ id: string; exp: number }>;
  if (target) {
    const [t] = await explicitTarget(target, dir);
    targets = [(await revoked.listIssued()).find((r) => r.id === t.id) ?? t];
  } else if (o.agent || o.secret) {
    targets = (await revoked.listIssued()).filter((r) => (!o.agent || r.agent === o.agent) && (!o.secret || r.secret === o.secret) && status(r, revoked, now) === 'active');
  } else throw new UsageError('turret handle revoke needs ID, HANDLE, --agent NAME or --secret NAME');
  for (const t of targets) await revoked.revoke(t.id, t.exp);
  out(`revoked ${targets.length} handle${targets.length === 1 ? '' : 's'}`);
}

/** A handle (opened with the key file) or a bare id; an id not in the log is kept a year at most. */
async function explicitTarget(target: string, dir: string): Promise<[{ id: string; exp: number }]> {
  if (target.startsWith('trt_')) {
    const claims = openHandle(await loadKeyRing(dir, false), target);
    if (!claims) throw new UsageError('that handle was not issued with this key file');
    return [claims];
  }
  if (/^[0-9a-f]{32}$/.test(target)) return [{ id: target, exp: Math.floor(Date.now() / 1000) + 366 * 86400 }];
  throw new UsageError('turret handle revoke takes a handle id (32 hex digits) or a handle (trt_…)');
}
