/**
 * Handles in client → server WebSocket messages, with the same rule as request bodies
 * (body.ts, docs/secrets.md): when a secret bound to the host opts in with `body: true`, literal
 * handles of opted-in secrets inside TEXT messages are replaced by their values; any other
 * handle — in a text message of a secret that did not opt in, in a BINARY message, in a ping,
 * pong or close reason, or hidden in base64/percent encoding anywhere — refuses, with the misuse
 * code when it goes to a host the secret is not bound to. A message is judged whole (the proxy
 * collects it, up to a cap), so a handle split across fragments is found.
 */
import { hostMatches } from '../policy/match.js';
import type { SecretDef } from '../policy/types.js';
import type { BodyMode } from './body.js';
import { HANDLE_RE } from './handles.js';
import { refuseEncoded, refuseLocation, type Used } from './inject.js';
import { refuse, resolveHandle, type InjectContext } from './resolve.js';

/** Inject when a secret bound to this host has `body: true` (the body rule), else scan. */
export function messageMode(ctx: InjectContext): BodyMode {
  return [...ctx.policy.secrets.values()].some((d: SecretDef) => d.body && d.hosts.some((h) => hostMatches(h, ctx.host, ctx.port, ctx.scheme))) ? 'inject' : 'scan';
}

export type MessageKind = 'text' | 'binary' | 'control';

/** The payload to send upstream (handles substituted in an opted-in text message), or a refusal. */
export function injectMessage(ctx: InjectContext, mode: BodyMode, kind: MessageKind, payload: Buffer, used: Used): Buffer {
  const where = kind === 'text' ? 'in a WebSocket text message' : kind === 'binary' ? 'in a WebSocket binary message' : 'in a WebSocket control frame';
  const text = payload.toString('latin1');
  refuseEncoded(ctx, text, where);
  const out: Buffer[] = [];
  let pos = 0;
  for (const m of text.matchAll(HANDLE_RE)) {
    const h = m[0];
    const start = m.index ?? 0;
    if (mode === 'scan' || kind !== 'text') refuseLocation(ctx, h, where);
    const r = resolveHandle(ctx, h);
    if (!r.def.body)
      refuse(ctx, r.claims, r.def, 'handle_location_unsupported', `secret ${r.def.name} is not injected into WebSocket messages (set body: true on the secret to allow it)`);
    used.set(h, { secret: r.effective.name, handle: h, value: r.value });
    out.push(payload.subarray(pos, start), Buffer.from(r.value.reveal(), 'utf8'));
    pos = start + h.length;
  }
  if (pos === 0) return payload;
  out.push(payload.subarray(pos));
  return Buffer.concat(out);
}
