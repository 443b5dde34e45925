/**
 * `settings.shared_state`: the Redis that replicas (and `--workers`) share for rate limits,
 * revocations and issued-handle records (src/state/). Validated here like every other setting,
 * so a typo is a file:line error at load, not a connection failure at the first request.
 *
 *   settings:
 *     shared_state:
 *       url: rediss://redis.turret.svc:6379/0
 *       ca_file: /etc/turret/redis-ca.crt
 *       password: { env: TURRET_REDIS_PASSWORD }
 *
 * A password inside the URL is refused, like `value:` in a secret source: rule files are
 * reviewed and committed, the password must come from a secret source.
 */
import type { SharedStateSettings } from '../policy/types.js';
import { readSource } from './secrets.js';
import type { Cursor } from './yaml.js';

const KEYS = ['url', 'ca_file', 'username', 'password', 'key_prefix', 'timeout'] as const;
const PREFIX = /^[A-Za-z0-9:._{}-]{1,64}$/;

export function readSharedState(c: Cursor): SharedStateSettings | undefined {
  const m = c.map(KEYS, ['url']);
  if (!m) return undefined;
  const uc = m.get('url')!;
  const raw = uc.str();
  let url: URL | null = null;
  if (raw !== undefined) {
    try {
      url = new URL(raw);
    } catch {
      uc.fail(`"${raw.slice(0, 60)}" is not a URL; write redis://HOST:PORT/DB or rediss://HOST:PORT/DB`);
    }
  }
  if (url) {
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') uc.fail(`the scheme must be redis:// or rediss:// (TLS), got ${url.protocol.slice(0, 20)}//`);
    else if (url.password) uc.fail('a password must not be written in a rule file; give it with password: { env: NAME } (or file:, command:, store:)');
    else if (!url.hostname) uc.fail('the URL names no host');
    else if (url.search || url.hash) uc.fail('the URL takes no query or fragment; use the keys of shared_state instead');
    else if (!/^\/?(\d{1,2})?$/.test(url.pathname)) uc.fail(`the path must be a database number such as /0, got ${url.pathname.slice(0, 20)}`);
  }
  const cac = m.get('ca_file');
  const caFile = cac ? (cac.str() ?? null) : null;
  if (cac && url && url.protocol !== 'rediss:') cac.fail('ca_file needs a rediss:// URL (TLS)');
  const pc = m.get('password');
  const password = pc ? readSource(pc) : null;
  const uname = m.get('username');
  const username = uname ? (uname.str() ?? null) : url?.username ? decodeURIComponent(url.username) : null;
  const kp = m.get('key_prefix');
  let keyPrefix = 'turret:';
  if (kp) {
    const s = kp.str();
    if (s !== undefined && !PREFIX.test(s)) kp.fail('key_prefix is 1-64 letters, digits or ":._{}-"');
    else if (s !== undefined) keyPrefix = s;
  }
  const tc = m.get('timeout');
  let timeoutMs = 1000;
  if (tc) {
    const s = tc.str() ?? '';
    const mm = /^(\d{1,6})(ms|s)$/.exec(s.trim());
    const v = mm ? Number(mm[1]) * (mm[2] === 's' ? 1000 : 1) : NaN;
    if (!(v >= 10 && v <= 30_000)) tc.fail(`"${s.slice(0, 20)}" must be a duration from 10ms to 30s, like 500ms or 2s`);
    else timeoutMs = v;
  }
  if (!url || raw === undefined || password === undefined) return undefined;
  return { url: `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`, caFile, username, password, keyPrefix, timeoutMs };
}
