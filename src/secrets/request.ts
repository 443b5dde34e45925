/**
 * The inject stage for one request, in order: a presigned SigV4 URL is re-presigned; the target
 * (query opt-in) is injected; a SigV4 Authorization header is re-signed; the other headers are
 * injected; and a plan for the body is made (scan or inject, aws-chunked re-signing). Every step
 * validates every handle it finds (resolve.ts); any refusal refuses the whole request.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable, Transform } from 'node:stream';
import { TurretError } from '../core/errors.js';
import { hostMatches } from '../policy/match.js';
import type { SecretDef, SecretSource } from '../policy/types.js';
import { bodyTransform, MAX_REWRITTEN_BODY, readBody, type BodyPlan } from './body.js';
import { HANDLE_RE } from './handles.js';
import { injectHeaders, injectTarget, refuseLocation, type HeaderPairs, type Injection, type Used } from './inject.js';
import { refuse, resolveHandle, type InjectContext, type Resolved } from './resolve.js';
import type { Secret } from './secret.js';
import { chunkResigner, STREAMING_SIGNED } from './sigv4-chunked.js';
import { isSigV4Authorization, parseAmzDate, parseAuthorization, presignedAuth, represign, resignHeaders, signingKey, type AwsCredentials, type SigV4Auth } from './sigv4.js';

export interface RequestInjection {
  headers: HeaderPairs;
  target: string;
  /** Live: body injections are added while the body streams. */
  used: Used;
  injections: Injection[];
  body: BodyPlan;
}

export interface InjectRequestInput {
  headers: HeaderPairs;
  target: string;
  /** The client's request (headers as received; body stream). */
  reqHeaders: IncomingHttpHeaders;
  reqBody: Readable;
  bodyExpected: boolean;
  load: (name: string, src: SecretSource) => Secret | null;
  /** Most bytes of a body held in memory (SigV4 hashing, length correction); default 8 MiB. */
  maxBuffered?: number;
}

function awsCreds(ctx: InjectContext, r: Resolved, load: InjectRequestInput['load']): AwsCredentials {
  const aws = r.effective.aws;
  if (!aws) refuse(ctx, r.claims, r.def, 'handle_location_unsupported', `secret ${r.effective.name} is not an AWS credential (add aws: to re-sign SigV4 requests)`);
  const id = load(`${r.effective.name}:access_key_id`, aws.accessKeyId);
  const token = aws.sessionToken ? load(`${r.effective.name}:session_token`, aws.sessionToken) : null;
  if (!id || (aws.sessionToken && !token)) throw new TurretError('secret_unavailable', `the AWS credential of secret ${r.effective.name} is not fully loaded`);
  return { accessKeyId: id.reveal(), secretAccessKey: r.value.reveal(), sessionToken: token?.reveal() };
}

function resolveAws(ctx: InjectContext, auth: SigV4Auth): Resolved {
  const h = new RegExp(`^${HANDLE_RE.source}$`).exec(auth.accessKeyId)?.[0];
  if (!h) throw new TurretError('handle_invalid', 'a SigV4 request carries an access key id that is not a Turret handle');
  return resolveHandle(ctx, h);
}

function lowerMap(headers: HeaderPairs): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of headers) {
    const lk = k.toLowerCase();
    out[lk] = out[lk] === undefined ? v : `${out[lk]},${v}`;
  }
  return out;
}

/**
 * The inject stage. Synchronous (no promise) for a request that is not SigV4-signed with a handle
 * nor presigned with one, by far the common case: only re-signing and reading a body to hash it
 * wait (docs/benchmarks.md, "Sixth pass"). A refusal throws either way.
 */
export function injectRequest(ctx: InjectContext, input: InjectRequestInput): RequestInjection | Promise<RequestInjection> {
  const target = input.target;
  const pre = target.includes('X-Amz-Credential=trt_') || target.includes('X-Amz-Credential=trt%5F') ? presignedAuth(target) : null;
  const authIdx = input.headers.findIndex(([k, v]) => k.toLowerCase() === 'authorization' && isSigV4Authorization(v));
  const sigv4Auth = authIdx >= 0 ? (input.headers[authIdx]?.[1] ?? '') : '';
  if (pre || (authIdx >= 0 && sigv4Auth.includes('trt_'))) return injectSigned(ctx, input, pre, authIdx, sigv4Auth);
  const used: Used = new Map();
  return injectRest(ctx, input, used, injectTarget(ctx, target, used), input.headers, null, null, sigv4Auth, false);
}

async function injectSigned(ctx: InjectContext, input: InjectRequestInput, pre: ReturnType<typeof presignedAuth>, authIdx: number, sigv4Auth: string): Promise<RequestInjection> {
  const used: Used = new Map();
  let target = input.target;
  let headers = input.headers;
  const host = lowerMap(headers).host ?? ctx.host;

  if (pre) {
    const r = resolveAws(ctx, pre.auth);
    const creds = awsCreds(ctx, r, input.load);
    target = await represign({ method: ctx.method, host, target, headers: lowerMap(headers), auth: pre.auth, creds, date: pre.date, expires: pre.expires });
    used.set(pre.auth.accessKeyId, { secret: r.effective.name, handle: pre.auth.accessKeyId, value: r.value });
  }
  target = injectTarget(ctx, target, used);

  let buffered: Buffer | null = null;
  let chunked: Transform | null = null;
  if (authIdx >= 0 && sigv4Auth.includes('trt_')) {
    const auth = parseAuthorization(sigv4Auth);
    if (!auth) {
      const h = sigv4Auth.match(HANDLE_RE)?.[0] ?? '';
      refuseLocation(ctx, h, 'in a SigV4 Authorization header that cannot be parsed');
    }
    const r = resolveAws(ctx, auth);
    const creds = awsCreds(ctx, r, input.load);
    const lower = lowerMap(headers);
    const sha = lower['x-amz-content-sha256'];
    if (sha?.startsWith('STREAMING-') && sha !== STREAMING_SIGNED && sha !== 'STREAMING-UNSIGNED-PAYLOAD-TRAILER') {
      throw new TurretError('body_encoding_unsupported', `SigV4 payload mode ${sha.slice(0, 60)} is not supported; use ${STREAMING_SIGNED}, UNSIGNED-PAYLOAD or a payload hash`);
    }
    if (sha === undefined && input.bodyExpected) buffered = await readBody(input.reqBody, input.maxBuffered ?? MAX_REWRITTEN_BODY);
    const cl = input.reqHeaders['content-length'];
    if (cl !== undefined && auth.signedHeaders.includes('content-length')) lower['content-length'] = buffered ? String(buffered.length) : cl;
    const date = parseAmzDate(lower['x-amz-date']) ?? new Date();
    const signed = await resignHeaders({ method: ctx.method, host, target, headers: lower, auth, creds, date, body: buffered ?? (input.bodyExpected ? null : Buffer.alloc(0)) });
    headers = headers
      .filter(([k]) => !['authorization', 'x-amz-date', 'x-amz-security-token'].includes(k.toLowerCase()))
      .concat([
        ['authorization', signed.authorization],
        ['x-amz-date', signed.amzDate],
      ]);
    if (creds.sessionToken) headers.push(['x-amz-security-token', creds.sessionToken]);
    used.set(auth.accessKeyId, { secret: r.effective.name, handle: auth.accessKeyId, value: r.value });
    if (sha === STREAMING_SIGNED) {
      const key = signingKey(creds.secretAccessKey, auth.shortDate, auth.region, auth.service);
      chunked = chunkResigner({ key, longDate: signed.amzDate, scope: signed.scope, seed: signed.signature });
    }
  }
  return injectRest(ctx, input, used, target, headers, buffered, chunked, sigv4Auth, pre !== null);
}

/** Headers, then the plan for the body: the same for every request, signed or not. */
function injectRest(
  ctx: InjectContext,
  input: InjectRequestInput,
  used: Used,
  target: string,
  inHeaders: HeaderPairs,
  buffered: Buffer | null,
  chunked: Transform | null,
  sigv4Auth: string,
  presigned: boolean,
): RequestInjection {
  const headers = injectHeaders(ctx, inHeaders, used);
  const transforms: Transform[] = [];
  let changesLength = false;
  if (input.bodyExpected || buffered) {
    const coding = String(input.reqHeaders['content-encoding'] ?? 'identity')
      .trim()
      .toLowerCase();
    const optedIn = [...ctx.policy.secrets.values()].some((d: SecretDef) => d.body && d.hosts.some((h) => hostMatches(h, ctx.host, ctx.port, ctx.scheme)));
    if (coding !== 'identity' && coding !== '' && optedIn) {
      throw new TurretError(
        'body_encoding_unsupported',
        `the request body is ${coding.slice(0, 20)}-encoded; handles in compressed bodies cannot be injected, send it uncompressed`,
      );
    }
    if (coding === 'identity' || coding === '') {
      // A signed payload cannot change: SigV4 bodies are scanned, never rewritten.
      const mode = optedIn && !sigv4Auth && !presigned ? 'inject' : 'scan';
      transforms.push(bodyTransform(ctx, mode, used));
      changesLength = mode === 'inject';
    }
    if (chunked) transforms.push(chunked);
  }
  return { headers, target, used, injections: [...used.values()], body: { buffered, transforms, changesLength, limit: input.maxBuffered ?? MAX_REWRITTEN_BODY } };
}
