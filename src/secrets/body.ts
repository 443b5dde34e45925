/**
 * Handles in request bodies, streaming. Two modes:
 * - `inject` (a secret bound to this host has `body: true`): literal handles of opted-in secrets
 *   are replaced by their values, across chunk boundaries; any other handle refuses.
 * - `scan` (everything else): a handle in the body refuses the request (with the misuse code
 *   when it goes to an unbound host), so a body is never a way to move a handle somewhere.
 * Handles hidden in base64 or percent encoding refuse in both modes (encoded.ts).
 *
 * Bytes that could be the start of a handle (the trailing run of handle/base64/percent
 * characters, at most HOLD_MAX) are held back until the next chunk decides them, so the held
 * window — not the body — bounds memory, and no byte of a handle leaves before it is judged.
 * Substitution changes the length: see prepareRequestBody for how Content-Length is corrected.
 */
import { Readable, Transform, pipeline } from 'node:stream';
import { TurretError } from '../core/errors.js';
import { HANDLE_RE } from './handles.js';
import { refuseEncoded, refuseLocation, type Used } from './inject.js';
import { refuse, resolveHandle, type InjectContext } from './resolve.js';

export type BodyMode = 'inject' | 'scan';

/** Longest run held back: a handle is at most 2048 characters; percent-encoded, three times that. */
export const HOLD_MAX = 8192;
/** Largest body collected in memory to send with a corrected Content-Length. */
export const MAX_REWRITTEN_BODY = 8 * 1024 * 1024;

const RUN_CHARS = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_%.~-') RUN_CHARS[c.charCodeAt(0)] = 1;

function tailRunStart(buf: Buffer): number {
  let i = buf.length;
  const floor = Math.max(0, buf.length - HOLD_MAX);
  while (i > floor && RUN_CHARS[buf[i - 1] ?? 0]) i--;
  return i;
}

export function bodyTransform(ctx: InjectContext, mode: BodyMode, used: Used): Transform {
  let pending: Buffer = Buffer.alloc(0);
  const process = (final: boolean): Buffer => {
    const text = pending.toString('latin1');
    refuseEncoded(ctx, text, 'in the request body');
    let emitTo = final ? pending.length : tailRunStart(pending);
    const matches = [...text.matchAll(HANDLE_RE)];
    for (const m of matches) {
      const start = m.index ?? 0;
      const end = start + m[0].length;
      // Never split a handle between what is sent now and what is held.
      if (!final && start < emitTo && end > emitTo) emitTo = start;
    }
    const out: Buffer[] = [];
    let pos = 0;
    for (const m of matches) {
      const start = m.index ?? 0;
      if (start >= emitTo) break;
      const h = m[0];
      if (mode === 'scan') refuseLocation(ctx, h, 'in the request body');
      const r = resolveHandle(ctx, h);
      if (!r.def.body)
        refuse(ctx, r.claims, r.def, 'handle_location_unsupported', `secret ${r.def.name} is not injected into request bodies (set body: true on the secret to allow it)`);
      used.set(h, { secret: r.effective.name, handle: h, value: r.value });
      out.push(pending.subarray(pos, start), Buffer.from(r.value.reveal(), 'utf8'));
      pos = start + h.length;
    }
    out.push(pending.subarray(pos, emitTo));
    pending = pending.subarray(emitTo);
    return Buffer.concat(out);
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      try {
        const out = process(false);
        cb(null, out.length ? out : undefined);
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb) {
      try {
        const out = process(true);
        cb(null, out.length ? out : undefined);
      } catch (e) {
        cb(e as Error);
      }
    },
  });
}

export interface BodyPlan {
  /** Body already read by an earlier stage (SigV4 needed its hash), sent instead of the stream. */
  buffered: Buffer | null;
  transforms: Transform[];
  /** True when the transforms may change the body's length. */
  changesLength: boolean;
  /** Most bytes of a body Turret will hold in memory (limit max_buffered_body); more → 413. */
  limit: number;
}

export const NO_BODY_PLAN: BodyPlan = { buffered: null, transforms: [], changesLength: false, limit: MAX_REWRITTEN_BODY };

async function collect(s: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of s) {
    n += (c as Buffer).length;
    if (n > limit) throw new TurretError('body_too_large', `the request body exceeds ${limit} bytes`);
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

/** Read a whole request body (bounded), e.g. to hash it for SigV4. */
export function readBody(s: Readable, limit = MAX_REWRITTEN_BODY): Promise<Buffer> {
  return collect(s, limit);
}

/**
 * The body and Content-Length to send upstream. When substitution may change the length and
 * the client declared one that fits the buffered-body limit, the rewritten body is collected and sent
 * with its exact length (a handle refused mid-body then never reaches the upstream at all);
 * larger or unframed bodies stream with chunked framing instead of a wrong length.
 */
export async function prepareRequestBody(
  source: Readable | null,
  length: string | undefined,
  plan: BodyPlan,
): Promise<{ body: Readable | Buffer | undefined; length: string | undefined }> {
  let src = source;
  let len = length;
  if (plan.buffered) {
    src = Readable.from([plan.buffered]);
    len = String(plan.buffered.length);
  }
  if (!src) return { body: undefined, length: undefined };
  if (plan.transforms.length === 0) return { body: plan.buffered ?? src, length: len };
  const piped = pipeline([src, ...plan.transforms], () => {}) as unknown as Readable;
  if (!plan.changesLength) return { body: piped, length: len };
  if (len !== undefined && Number(len) <= plan.limit) {
    const buf = await collect(piped, plan.limit * 2);
    return { body: buf, length: String(buf.length) };
  }
  return { body: piped, length: undefined };
}

/** Whether a request carries a body (RFC 9112 §6.3: Content-Length or Transfer-Encoding). */
export function requestHasBody(h: { 'content-length'?: string; 'transfer-encoding'?: string }): boolean {
  return h['content-length'] !== undefined ? h['content-length'] !== '0' : h['transfer-encoding'] !== undefined;
}
