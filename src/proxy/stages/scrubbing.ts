/**
 * Which scrubber a response gets. Every secret Turret holds is looked for in every response;
 * what replaces it depends on the request: a secret injected from the agent's handle is
 * replaced by that handle (the agent sees exactly what it sent, and can keep using it), any
 * other secret by `[REDACTED:secret:<name>]`. Known token formats become `[REDACTED:<type>]`.
 *
 * Compiling a scrubber costs more than a request, so compiled ones are cached by the exact
 * (secret values, replacements) they were built from: a rotated file secret changes the key.
 */
import { createHash } from 'node:crypto';
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

export class ScrubberCache {
  private readonly cache = new Map<string, Scrubber>();

  constructor(
    private readonly secrets: () => Secret[],
    private readonly patterns: CompiledPattern[] = builtinPatterns(),
    /** True for a string that opens as a Turret handle: token patterns never fire inside one. */
    private readonly isHandle?: (text: string) => boolean,
  ) {}

  /** The scrubber for a response to a request that made these injections. */
  get(injections: readonly Injection[] = []): Scrubber {
    const handleFor = new Map(injections.map((i) => [i.secret, i.handle]));
    const known: KnownSecret[] = this.secrets().map((s) => ({ name: s.name, value: s.reveal(), replacement: handleFor.get(s.name) ?? secretMarker(s.name) }));
    const h = createHash('sha256');
    for (const k of known) h.update(`${k.name}\0${k.value}\0${k.replacement}\0`);
    const key = h.digest('base64');
    let s = this.cache.get(key);
    if (!s) {
      s = compileScrubber({ secrets: known, patterns: this.patterns, isHandle: this.isHandle });
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(key, s);
    }
    return s;
  }
}
