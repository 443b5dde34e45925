/**
 * Deep-scrub a JSON-like value (audit records, structured logs). Returns a copy; never throws.
 * Bounded: nesting beyond `maxDepth` becomes a marker, cycles become a marker, so a hostile or
 * accidental structure cannot blow the stack.
 */
import type { Scrubber } from './scrubber.js';

export const SCRUB_JSON_MAX_DEPTH = 32;

export function scrubJson(value: unknown, s: Scrubber, maxDepth = SCRUB_JSON_MAX_DEPTH): unknown {
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return s.scrubString(v).text;
    if (v === null || typeof v !== 'object') return v; // numbers, booleans, undefined, bigint
    if (depth >= maxDepth) return '[TRUNCATED:depth]';
    if (seen.has(v)) return '[CIRCULAR]';
    seen.add(v);
    try {
      if (Buffer.isBuffer(v)) return s.scrubString(v.toString('utf8')).text;
      if (v instanceof Error) return { name: v.name, message: s.scrubString(v.message).text };
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
      if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[s.scrubString(k).text] = walk(x, depth + 1);
      return out;
    } finally {
      seen.delete(v); // shared (non-cyclic) references are fine; only ancestors count as cycles
    }
  };
  return walk(value, 0);
}
