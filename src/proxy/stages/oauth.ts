/**
 * OAuth token capture (opt-in per token endpoint, `scrub.oauth_capture` in a rule file).
 *
 * When an agent's POST to a configured token endpoint succeeds, the `access_token` and
 * `refresh_token` of the JSON answer are replaced by fresh handles issued to that agent; Turret
 * keeps the real tokens and injects them like any other secret, toward the configured hosts only
 * (the refresh token also toward the token endpoint, so the agent can refresh with its handle).
 *
 * The real tokens live **in memory only** (lost on restart: the agent then logs in again), in a
 * bounded table. They reach the rest of Turret through two narrow hooks, so the secrets module
 * needs no change: `withDynamicSecrets` gives the pipeline a policy whose secret table also lists
 * the captured tokens (resolve.ts looks handles up there), and `Runtime.secretValue` asks this
 * store first. Names carry a ":" (`oauth:<name>:access:<agent>`), which rule-file names cannot, so a
 * captured token never shadows a configured secret.
 */
import { Writable, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TurretError } from '../../core/errors.js';
import type { OAuthCaptureDef } from '../../policy/types.js';
import type { Redaction, Scrubber } from '../../scrub/scrubber.js';
import { dynamicDef, REFRESH_TTL_MS, type OAuthStore } from '../oauth-store.js';
import { routed, type Exchange } from './exchange.js';

/** A token endpoint answer is small; anything bigger is not buffered for capture. */
export const MAX_TOKEN_RESPONSE = 256 * 1024;

/** The capture that applies to this exchange (POST to a configured endpoint), if any. */
export function captureFor(x: Exchange): Capture | undefined {
  const store = x.state.oauth;
  const t = x.target;
  if (!store || !t || x.req.method !== 'POST' || t.scheme !== 'https') return undefined;
  const path = t.path.split('?')[0];
  const def = x.state.policy.settings.scrub?.oauthCapture.find((d) => d.host === t.host && (d.port ?? 443) === t.port && d.path === path);
  return def ? new Capture(store, def) : undefined;
}

/** One token endpoint answer being captured. */
export class Capture {
  constructor(
    private readonly store: OAuthStore,
    private readonly def: OAuthCaptureDef,
  ) {}

  async respond(x: Exchange, body: Readable, decode: Transform | null, headers: Array<[string, string]>, scrubber: Scrubber, count: (r: Redaction) => void): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    const collect = new Writable({
      write(c: Buffer, _enc, cb) {
        size += c.length;
        if (size > MAX_TOKEN_RESPONSE) return cb(new TurretError('upstream_protocol_error', `the token endpoint answer exceeds ${MAX_TOKEN_RESPONSE} bytes`));
        chunks.push(c);
        cb();
      },
    });
    await pipeline([body, ...(decode ? [decode] : []), collect]);
    let out: Buffer = Buffer.concat(chunks);
    const status = x.status ?? 0;
    if (status >= 200 && status < 300) out = this.replaceTokens(out, routed(x).agent);
    // Whatever else is in the answer (id_token, tokens in an error text) is scrubbed as usual.
    const r = scrubber.scrubBuffer(out);
    r.redactions.forEach(count);
    x.res.writeHead(status, headers.filter(([k]) => k.toLowerCase() !== 'trailer').flat());
    x.responded = true;
    x.bytesOut += r.buf.length;
    x.res.end(r.buf);
  }

  private replaceTokens(raw: Buffer, agent: string): Buffer {
    let doc: unknown;
    try {
      doc = JSON.parse(raw.toString('utf8'));
    } catch {
      return raw; // not JSON: nothing to capture; the scrubber still runs
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return raw;
    const o = doc as Record<string, unknown>;
    const expiresIn = typeof o.expires_in === 'number' && o.expires_in > 0 ? o.expires_in * 1000 : this.def.ttlMs;
    let changed = false;
    if (typeof o.access_token === 'string' && o.access_token.length > 0) {
      o.access_token = this.store.keep(dynamicDef(this.def, 'access', agent), o.access_token, agent, Math.min(expiresIn, REFRESH_TTL_MS));
      changed = true;
    }
    if (typeof o.refresh_token === 'string' && o.refresh_token.length > 0) {
      o.refresh_token = this.store.keep(dynamicDef(this.def, 'refresh', agent), o.refresh_token, agent, REFRESH_TTL_MS);
      changed = true;
    }
    return changed ? Buffer.from(JSON.stringify(o), 'utf8') : raw;
  }
}
