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
import { BUILTIN_PATTERNS, compilePatterns, type CompiledPattern } from '../scrub/patterns.js';
import { compileScrubber, type KnownSecret, type Scrubber } from '../scrub/scrubber.js';
import type { Injection } from '../secrets/inject.js';
import type { Secret } from '../secrets/secret.js';

let builtin: CompiledPattern[] | null = null;
export function builtinPatterns(): CompiledPattern[] {
  builtin ??= compilePatterns(BUILTIN_PATTERNS);
  return builtin;
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
      s = compileScrubber({ secrets: known, patterns: this.patterns });
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(key, s);
    }
    return s;
  }
}
