/**
 * Session labels (`taints:` / `unless_tainted:` on rules, docs/rules.md, capabilities): a rule
 * that allows a request may label the agent's session ("read-sensitive"); a rule with
 * `unless_tainted` stops applying while the session carries the label. So "read the customer
 * API, then POST it to a paste site" is refused at the second step.
 *
 * A session is keyed by the caller (proxy/): the agent, or the `turret run` the request came
 * from when the proxy knows it. Labels expire `settings.taint_ttl` after they were last added
 * (default 1 h). Like the rate limiter, the store lives on the Runtime and outlives reloads, so a
 * reload does not wash a session clean. Memory is bounded: idle sessions are dropped oldest first.
 */
import type { TaintMark } from './types.js';

export const DEFAULT_TAINT_TTL_MS = 60 * 60 * 1000;
const MAX_SESSIONS = 50_000;

export class TaintStore {
  private readonly sessions = new Map<string, Map<string, TaintMark>>();

  /** The live labels of a session (expired ones are dropped), or undefined when it has none. */
  get(session: string, now: number = Date.now()): ReadonlyMap<string, TaintMark> | undefined {
    const marks = this.sessions.get(session);
    if (!marks) return undefined;
    for (const [label, m] of marks) if (m.expires <= now) marks.delete(label);
    if (marks.size === 0) {
      this.sessions.delete(session);
      return undefined;
    }
    return marks;
  }

  add(session: string, labels: readonly string[], by: { request: string; rule: string }, ttlMs: number, now: number = Date.now()): void {
    if (labels.length === 0) return;
    let marks = this.sessions.get(session);
    if (!marks) {
      if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string);
      marks = new Map();
    } else this.sessions.delete(session); // re-insert: the Map's order is least recently labelled first
    this.sessions.set(session, marks);
    for (const label of labels) marks.set(label, { label, request: by.request, rule: by.rule, at: now, expires: now + ttlMs });
  }
}
