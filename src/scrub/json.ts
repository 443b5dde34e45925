/**
 * Deep-scrub a JSON-like value (audit records: cli/start.ts). Returns a copy; never throws. Each
 * string (value or key) is scrubbed as itself, not in its JSON-escaped spelling.
 * Bounded: nesting beyond `maxDepth` becomes a marker, cycles become a marker, so a hostile or
 * accidental structure cannot blow the stack.
 */
import type { Scrubber } from './scrubber.js';

export const SCRUB_JSON_MAX_DEPTH = 32;

/** `s`: a scrubber, or any string → string function built on one (start.ts adds handle references). */
export function scrubJson(value: unknown, s: Scrubber | ((text: string) => string), maxDepth = SCRUB_JSON_MAX_DEPTH): unknown {
  const text = typeof s === 'function' ? s : (t: string): string => s.scrubString(t).text;
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return text(v);
    if (v === null || typeof v !== 'object') return v; // numbers, booleans, undefined, bigint
    if (depth >= maxDepth) return '[TRUNCATED:depth]';
    if (seen.has(v)) return '[CIRCULAR]';
    seen.add(v);
    try {
      if (Buffer.isBuffer(v)) return text(v.toString('utf8'));
      if (v instanceof Error) return { name: v.name, message: text(v.message) };
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
      if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[text(k)] = walk(x, depth + 1);
      return out;
    } finally {
      seen.delete(v); // shared (non-cyclic) references are fine; only ancestors count as cycles
    }
  };
  return walk(value, 0);
}
