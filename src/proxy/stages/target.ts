/**
 * target: where the request goes, in canonical form, before any decision. Plain proxy requests
 * must be absolute-form (`GET http://host/path`); the Host header is then replaced by the URL's
 * authority (RFC 9112 §3.2.2). Inside an intercepted tunnel the CONNECT host, the TLS SNI and
 * the Host header must all name the same host and port, or the request is refused with 421.
 */
import { TurretError } from '../../core/errors.js';
import { parseAuthority, type Target } from '../../net/host.js';
import type { ResolvedTarget, Tunnel } from './exchange.js';

const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/;

// Keep-alive clients repeat the same few authorities in every request line and Host header, and
// parsing one (with its IDNA step) was ~3% of a plain HTTP request's CPU. parseAuthority is a pure
// function of its two arguments, so a result is kept per spelling (bounded; only successes: a
// refused spelling is parsed, and refused, every time).
const MAX_KEPT = 1024;
const parsed = [new Map<string, Target>(), new Map<string, Target>()];

function authorityOf(text: string, scheme: 'http' | 'https'): Target {
  const m = parsed[scheme === 'https' ? 1 : 0] as Map<string, Target>;
  let t = m.get(text);
  if (t === undefined) {
    t = parseAuthority(text, scheme === 'https' ? 443 : 80);
    if (m.size >= MAX_KEPT) m.clear();
    m.set(text, t);
  }
  return t;
}

function checkPath(path: string): string {
  if (path === '') return '/';
  if (!path.startsWith('/') && !path.startsWith('?')) throw new TurretError('bad_target', 'the request path must start with "/"');
  // Raw control characters and spaces never belong in a request target (RFC 9112 §3.2).
  if (/[\x00-\x20\x7f]/.test(path)) throw new TurretError('bad_target', 'the request path contains spaces or control characters');
  return path.startsWith('?') ? `/${path}` : path;
}

export function targetFromAbsolute(url: string): ResolvedTarget {
  const m = ABSOLUTE.exec(url);
  if (!m) {
    throw new TurretError('bad_target', 'a proxy request must use an absolute URL (http://host/path); configure the client with HTTP_PROXY/HTTPS_PROXY');
  }
  const scheme = (m[1] ?? '').toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') throw new TurretError('bad_target', `scheme ${scheme.slice(0, 20)} is not supported (http, https)`);
  const t = authorityOf(m[2] ?? '', scheme);
  return { scheme, host: t.host, port: t.port, path: checkPath(m[3] ?? '') };
}

/**
 * A proxy request's Host header: routing, policy and injection use the absolute-form target
 * only, and the upstream gets a Host generated from it (RFC 9112 §3.2.2: a proxy MUST ignore the
 * received Host and generate a new one). A Host that names another authority is therefore
 * harmless and is allowed — Node's own `http.request({ host: proxy, path: absoluteUrl })` sends
 * the proxy's address there. A Host that is not a valid authority at all (userinfo, NUL, path,
 * spaces) is refused: no well-formed client sends one, and it is a probe for parsers that do route
 * on Host. Duplicate and missing Host are refused in validate.ts.
 */
export function checkHostHeader(t: ResolvedTarget, hostHeader: string | undefined): ResolvedTarget {
  if (hostHeader === undefined) return t;
  try {
    authorityOf(hostHeader, t.scheme);
  } catch {
    throw new TurretError('bad_request', 'the Host header is not a valid authority');
  }
  return t;
}

/** The Host header last found to match each tunnel. */
const checkedHost = new WeakMap<Tunnel, string>();

export function targetInTunnel(tunnel: Tunnel, url: string, hostHeader: string | undefined): ResolvedTarget {
  if (tunnel.mismatch) throw new TurretError('misdirected_request', tunnel.mismatch);
  let path = url;
  if (!url.startsWith('/')) {
    const abs = targetFromAbsolute(url);
    if (abs.scheme !== 'https' || abs.host !== tunnel.host || abs.port !== tunnel.port) {
      throw new TurretError('misdirected_request', `the request URL names ${abs.host}:${abs.port} inside a tunnel to ${tunnel.host}:${tunnel.port}`);
    }
    path = abs.path;
  }
  if (hostHeader === undefined) throw new TurretError('bad_request', 'a request inside a tunnel needs a Host header');
  // Keep-alive requests in a tunnel repeat its Host header: the one spelling already checked
  // against this tunnel is not parsed again (parseAuthority is a pure function of the text).
  if (checkedHost.get(tunnel) === hostHeader) return { scheme: 'https', host: tunnel.host, port: tunnel.port, path: checkPath(path) };
  let host;
  try {
    host = parseAuthority(hostHeader, 443);
  } catch {
    throw new TurretError('misdirected_request', 'the Host header is not a valid authority');
  }
  if (host.host !== tunnel.host || host.port !== tunnel.port) {
    throw new TurretError('misdirected_request', `Host ${host.host}:${host.port} does not match the tunnel to ${tunnel.host}:${tunnel.port}`);
  }
  checkedHost.set(tunnel, hostHeader);
  return { scheme: 'https', host: tunnel.host, port: tunnel.port, path: checkPath(path) };
}
