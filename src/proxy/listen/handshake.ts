/**
 * The client's side of an intercepted tunnel's TLS handshake. A client that rejects Turret's
 * certificate (curl without the CA sends alert 48 "unknown ca"; Node and Go clients just close),
 * offers no ALPN protocol Turret serves, sends something that is not TLS, or goes away in the
 * middle used to leave only a `tunnel_close "completed"` record and a debug line. The watch
 * keeps the first failure (OpenSSL's reason, or "closed during the handshake") so the tunnel's
 * close record names it (code client_tls_failed, outcome aborted) and an info line says it once.
 *
 * It also decides when the tunnel is closed for the record: when the TLS socket has closed (its
 * 'error' always comes before its 'close', so the reason is known by then), or when the client
 * socket closes before TLS was ever set up on it (the leaf was still being made).
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { TurretError } from '../../core/errors.js';

/** What an operator can do about the usual reasons (OpenSSL's reason strings, lower case). */
const HINTS: Array<[RegExp, string]> = [
  [/alert (unknown ca|bad certificate|certificate unknown|decrypt error)/, 'the client does not trust Turret’s CA (give it ca.crt, docs/clients.md)'],
  [/no application protocol/, 'the client offered no ALPN protocol Turret serves (http/1.1, http/1.0)'],
  [/http request|wrong version number|unexpected message|packet length too long|unsupported protocol|record layer failure/, 'the client did not start a TLS handshake'],
];

/** A TLS error of the client's handshake, as a record's reason: OpenSSL's reason text and what it usually means. */
export function handshakeError(err: Error & { code?: string; reason?: string }): TurretError {
  // OpenSSL's reason strings are a fixed vocabulary (never peer data); the message is not used.
  const why = (typeof err.reason === 'string' && err.reason) || err.code || 'unknown error';
  const hint = HINTS.find(([re]) => re.test(why))?.[1];
  return new TurretError('client_tls_failed', `the client's TLS handshake failed: ${why}${err.code ? ` (${err.code})` : ''}${hint ? `; ${hint}` : ''}`);
}

export class HandshakeWatch extends EventEmitter {
  private tlsSocket: tls.TLSSocket | null = null;
  private secure = false;
  private failure: TurretError | null = null;
  private done = false;

  /** `onFail` is called once, at the close, for a tunnel whose handshake never completed. */
  constructor(
    raw: Duplex,
    private readonly onFail: (err: TurretError) => void,
  ) {
    super();
    raw.once('close', () => {
      if (!this.tlsSocket) this.finish();
    });
  }

  /** The server-side TLS socket over the client's connection. */
  attach(t: tls.TLSSocket): void {
    this.tlsSocket = t;
    t.once('secure', () => (this.secure = true));
    t.on('error', (e: Error) => {
      if (!this.secure && !this.failure) this.failure = handshakeError(e);
    });
    t.once('close', () => this.finish());
  }

  /** Why the tunnel ended without a handshake, or null once it completed (read at the close). */
  cause(): TurretError | null {
    return this.secure ? null : this.failure;
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (!this.secure) {
      this.failure ??= new TurretError(
        'client_tls_failed',
        'the client closed the connection before the TLS handshake completed (a client that rejects the certificate often just closes)',
      );
      this.onFail(this.failure);
    }
    this.emit('close');
  }
}
