/**
 * Which scrubber a response gets. Every secret Turret holds is looked for in every response;
 * what replaces it depends on the request: a secret injected from the agent's handle is
 * replaced by that handle (the agent sees exactly what it sent, and can keep using it), any
 * other secret by `[REDACTED:secret:<name>]`. Known token formats become `[REDACTED:<type>]`.
 *
 * Compiling a scrubber costs more than a request, so compiled ones are cached by the generation
 * of secret values they were built from and their replacements: a rotated secret starts a new
 * generation (see ScrubberCache for when values are looked at again).
 */
import type { Policy, ScrubSettings } from '../../policy/types.js';
import { BUILTIN_PATTERNS, GENERIC_PATTERNS, compilePatterns, type CompiledPattern } from '../../scrub/patterns.js';
import { compileScrubber, type KnownSecret, type Scrubber } from '../../scrub/scrubber.js';
import type { Injection } from '../../secrets/inject.js';
import type { Secret } from '../../secrets/secret.js';

let builtin: CompiledPattern[] | null = null;
export function builtinPatterns(): CompiledPattern[] {
  builtin ??= compilePatterns(BUILTIN_PATTERNS);
  return builtin;
}

/** Built-ins (+ the generic rules when enabled) + the operator's `scrub.patterns`. The loader
 * compiled each operator pattern already, so this cannot fail for a policy that loaded. */
export function policyPatterns(policy: Policy): CompiledPattern[] {
  const s = policy.settings.scrub;
  if (!s || (!s.generic && s.patterns.length === 0)) return builtinPatterns();
  const own = s.patterns.map((d) => ({ ...d, keywords: d.keywords ? [...d.keywords] : undefined }));
  return compilePatterns([...BUILTIN_PATTERNS, ...(s.generic ? GENERIC_PATTERNS : []), ...own]);
}

/**
 * Is a body of this Content-Type scanned? Default ('all'): every body, binary included — the
 * scrubber is byte-safe and a token inside an uncompressed tarball or a PDF is still a token.
 * A body without a Content-Type is scanned whatever the list says (fail closed).
 */
export function scansContentType(settings: ScrubSettings | undefined, header: string | string[] | undefined): boolean {
  const list = settings?.contentTypes ?? 'all';
  if (list === 'all') return true;
  const raw = Array.isArray(header) ? header[0] : header;
  const mt = (raw ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (mt === '' || !mt.includes('/')) return true;
  const major = mt.slice(0, mt.indexOf('/'));
  return list.some((t) => t === mt || t === `${major}/*`);
}

export function secretMarker(name: string): string {
  return `[REDACTED:secret:${name}]`;
}

const MAX_CACHED = 256;
const NO_INJECTIONS: readonly Injection[] = [];
/** How long a loaded set of secret values is trusted before the sources are asked again. */
export const SECRETS_RECHECK_MS = 250;

interface Snapshot {
  /** Bumped whenever the loaded values differ from the previous load: part of every cache key. */
  gen: number;
  /** `gen` as the cache key of the scrubber for no injections (made once per load, not per call). */
  genKey: string;
  known: Secret[];
  values: Map<string, string>;
  /** `version()` when loaded, and when (ms). */
  version: number;
  at: number;
}

/**
 * Loading every secret (a stat per file source; a stat and an AES-GCM decrypt per store entry)
 * per response cost more than the rest of a small request with 40 secrets configured, so the
 * loaded set is kept and asked again only when (a) `version()` changed (an OAuth token was
 * captured, a reload built a new cache anyway), (b) a request injected a value that differs from
 * the kept one (a rotated secret is scrubbed from the very response to the request that used
 * it), or (c) SECRETS_RECHECK_MS passed (a file or store entry rotated on disk, a command
 * refreshed: scrubbed within that bound). A reload that finds the same values keeps the compiled
 * scrubbers.
 */
export class ScrubberCache {
  private readonly cache = new Map<string, Scrubber>();
  private snap: Snapshot | null = null;

  constructor(
    private readonly secrets: () => Secret[],
    private readonly patterns: CompiledPattern[] = builtinPatterns(),
    /** True for a string that opens as a Turret handle: token patterns never fire inside one. */
    private readonly isHandle?: (text: string) => boolean,
    /** A cheap number that changes when the secret table itself changes (OAuth captures). */
    private readonly version: () => number = () => 0,
    private readonly now: () => number = Date.now,
  ) {}

  private snapshot(injections: readonly Injection[]): Snapshot {
    const s = this.snap;
    const t = this.now();
    if (s && s.version === this.version() && t - s.at < SECRETS_RECHECK_MS && (injections.length === 0 || injections.every((i) => s.values.get(i.secret) === i.value.reveal())))
      return s;
    const known = this.secrets();
    const values = new Map(known.map((k) => [k.name, k.reveal()]));
    const same = s !== null && s.values.size === values.size && [...values].every(([k, v]) => s.values.get(k) === v);
    if (!same) this.cache.clear();
    const gen = same && s ? s.gen : (s?.gen ?? 0) + 1;
    this.snap = { gen, genKey: String(gen), known, values, version: this.version(), at: t };
    return this.snap;
  }

  private detector: { gen: number; scrubber: Scrubber } | null = null;

  /**
   * Known secret values only (no token patterns), for the outbound check (outbound.ts): which
   * secret a request carries, in any form the scrubber knows. Recompiled when the values change.
   */
  known(): Scrubber {
    const snap = this.snapshot(NO_INJECTIONS);
    if (this.detector?.gen !== snap.gen) {
      const known: KnownSecret[] = snap.known.map((k) => ({ name: k.name, value: k.reveal(), replacement: secretMarker(k.name) }));
      this.detector = { gen: snap.gen, scrubber: compileScrubber({ secrets: known, patterns: [] }) };
    }
    return this.detector.scrubber;
  }

  /** The scrubber for a response to a request that made these injections. */
  get(injections: readonly Injection[] = NO_INJECTIONS): Scrubber {
    const snap = this.snapshot(injections);
    // The key names the replacements only: the values are those of generation `gen`. Most
    // responses follow no injection: their key is the generation's, with no map built per call.
    let key = snap.genKey;
    let handleFor: Map<string, string> | null = null;
    if (injections.length > 0) {
      handleFor = new Map();
      for (const i of injections) handleFor.set(i.secret, i.handle);
      for (const [name, handle] of handleFor) key += `\0${name}\0${handle}`;
    }
    let s = this.cache.get(key);
    if (!s) {
      const known: KnownSecret[] = snap.known.map((k) => ({ name: k.name, value: k.reveal(), replacement: handleFor?.get(k.name) ?? secretMarker(k.name) }));
      s = compileScrubber({ secrets: known, patterns: this.patterns, isHandle: this.isHandle });
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(key, s);
    }
    return s;
  }
}
