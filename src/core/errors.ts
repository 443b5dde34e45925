/**
 * Every refusal and failure Turret reports has a stable `code` (what clients, tests and the
 * `X-Turret-Error` header see) and an HTTP status. The table is the single source of truth;
 * docs/errors.md lists the same codes. Tests assert codes, never messages.
 *
 * Messages must never contain secret values: they are shown to the agent. Callers pass names
 * (agent, secret, rule, host), never values.
 */

export const ERROR_TABLE = {
  // 400 — the request itself is malformed
  bad_request: { status: 400, what: 'the request is malformed' },
  expectation_unsupported: { status: 417, what: 'the request has an Expect field other than 100-continue, which Turret cannot meet' },
  bad_target: { status: 400, what: 'the request target (host, port or URL) is malformed' },
  // 407 — who is asking
  proxy_auth_required: { status: 407, what: 'no agent credential was presented' },
  proxy_auth_invalid: { status: 407, what: 'the agent credential is unknown or wrong' },
  proxy_auth_throttled: { status: 429, what: 'too many failed proxy credentials from this client address; wait for Retry-After' },
  // 403 — policy
  policy_denied: { status: 403, what: 'no rule allows this request' },
  method_forbidden: { status: 403, what: 'this method is never allowed through the proxy' },
  https_required: { status: 403, what: 'writes over plain HTTP are not allowed' },
  dest_address_forbidden: { status: 403, what: 'the destination resolves to an address the proxy refuses' },
  dest_host_lookalike: { status: 403, what: 'the host name mixes scripts (possible look-alike)' },
  handle_invalid: { status: 403, what: 'a credential handle is malformed or forged' },
  handle_wrong_agent: { status: 403, what: 'a credential handle belongs to another agent' },
  handle_expired: { status: 403, what: 'a credential handle has expired' },
  handle_revoked: { status: 403, what: 'a credential handle was revoked' },
  handle_host_not_bound: { status: 403, what: 'a credential handle was sent to a host its secret is not bound to' },
  handle_scope_denied: { status: 403, what: 'a credential handle is not valid for this method or path' },
  handle_plain_http: { status: 403, what: 'a credential handle was sent over plain HTTP' },
  handle_location_unsupported: { status: 403, what: 'a credential handle was found where it cannot be injected' },
  secret_unavailable: { status: 403, what: 'the secret behind a handle could not be loaded' },
  body_schema_invalid: { status: 403, what: 'the request body does not match the JSON Schema the rule requires' },
  session_tainted: { status: 403, what: 'the session carries a label (from an earlier request) that the rule excludes' },
  secret_in_request: { status: 403, what: 'the request carries the value of a secret Turret keeps (use a handle instead)' },
  body_encoding_unsupported: { status: 415, what: 'a compressed request body cannot be inspected for handles' },
  approval_denied: { status: 403, what: 'an operator refused the request (action: ask)' },
  approval_timeout: { status: 403, what: 'no operator decided the request in time (action: ask)' },
  approval_cancelled: { status: 403, what: 'the client gave up before an operator decided (action: ask)' },
  approvals_full: { status: 429, what: 'too many requests are already waiting for an operator' },
  rate_limited: { status: 429, what: 'the agent exceeded its request rate limit' },
  too_many_tunnels: { status: 429, what: 'the agent has too many open tunnels' },
  // 421 — authority mismatch inside a tunnel
  misdirected_request: { status: 421, what: 'CONNECT host, TLS SNI and Host header disagree' },
  // 4xx limits
  client_timeout: { status: 408, what: 'the client did not send a complete request in time' },
  headers_too_large: { status: 431, what: 'request headers exceed the configured limit' },
  body_too_large: { status: 413, what: 'request body exceeds the configured limit' },
  // An exchange cut short by the client or by shutdown (audit outcome `aborted`); 499 is the
  // status recorded when nothing was sent (the client is gone and never sees it).
  client_closed: { status: 499, what: 'the client closed the connection before the exchange completed' },
  drain_deadline: { status: 503, what: 'the proxy was shutting down and the drain deadline cut the exchange' },
  // A tunnel whose client never completed TLS with Turret's leaf (rejected the certificate, no
  // common ALPN, not TLS, closed mid-handshake): outcome `aborted`; no HTTP answer is possible.
  client_tls_failed: { status: 400, what: "the client's TLS handshake inside a tunnel failed (the reason names OpenSSL's error or alert)" },
  // 5xx — network, not policy
  dns_failed: { status: 502, what: 'the destination host name could not be resolved' },
  upstream_connect_failed: { status: 502, what: 'the upstream could not be reached' },
  upstream_tls_failed: { status: 502, what: 'the upstream TLS certificate could not be verified' },
  upstream_protocol_error: { status: 502, what: 'the upstream sent an invalid response' },
  upstream_coding_unsupported: { status: 502, what: 'the upstream response uses a content or transfer coding the proxy cannot decode and scan' },
  upstream_closed: { status: 502, what: 'the upstream closed the connection before its response was complete' },
  upstream_timeout: { status: 504, what: 'the upstream did not answer in time' },
  upstream_queue_timeout: {
    status: 503,
    what: "every one of the agent's own upstream connections to the origin stayed busy longer than upstream_queue_timeout; the request was never sent",
  },
  emfile: { status: 503, what: 'the proxy ran out of file descriptors (raise its open-files limit, docs/operations.md)' },
  proxy_unavailable: { status: 503, what: 'the proxy is not ready (rules, CA or secrets not loaded)' },
  state_unavailable: { status: 503, what: 'the shared state (Redis) is unreachable and production mode refuses to serve without it' },
  internal_error: { status: 500, what: 'the proxy failed internally' },
} as const satisfies Record<string, { status: number; what: string }>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export class TurretError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** A short, secret-free explanation for the agent and the audit record. */
  readonly reason: string;
  /** Name of the rule (file:line) that decided, when one did. */
  readonly rule: string | undefined;
  /** Seconds a client should wait (429 → Retry-After). */
  readonly retryAfterS: number | undefined;

  constructor(code: ErrorCode, reason?: string, opts: { rule?: string; cause?: unknown; retryAfterS?: number } = {}) {
    const entry = ERROR_TABLE[code];
    super(reason ?? entry.what, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TurretError';
    this.code = code;
    this.status = entry.status;
    this.reason = reason ?? entry.what;
    this.rule = opts.rule;
    this.retryAfterS = opts.retryAfterS;
  }
}

/** True for statuses that are policy (retrying another way will not help), not network faults. */
export function isPolicyStatus(status: number): boolean {
  return status < 500;
}

export function isTurretError(e: unknown): e is TurretError {
  return e instanceof TurretError;
}

/** Wrap anything thrown into a TurretError without leaking its message (it may hold data). */
export function asTurretError(e: unknown): TurretError {
  if (e instanceof TurretError) return e;
  return new TurretError('internal_error', undefined, { cause: e });
}
