/**
 * Requests an `action: ask` rule matched wait here for an operator (the console's approvals page,
 * or `turret approvals allow|deny ID`). The state machine, per entry:
 *
 *   pending ──allow once──────────▶ allowed_once   (this request proceeds)
 *           ──allow for DURATION──▶ allowed_for    (this request proceeds; a rule entry with
 *                                                   `until:` is added for agent + host, approval-rules.ts)
 *           ──deny [message]──────▶ denied         (403 approval_denied, the message in the body)
 *           ──ask_timeout passes──▶ timed_out      (403 approval_timeout)
 *           ──client gives up─────▶ cancelled      (approval_cancelled; nothing is sent)
 *
 * Only a pending entry can change; every other transition is refused with a clear error (a
 * second operator clicking "allow" on a request already denied must not un-deny it). Entries
 * live in memory: a restart ends every pending request (their clients see the connection close,
 * and each exchange still writes its one record). Decided entries are kept for the console's
 * history, bounded.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { ApprovalNote } from '../audit/record.js';

export type ApprovalState = 'pending' | ApprovalNote['decision'];

export interface ApprovalRequest {
  agent: string;
  method: string;
  scheme: string;
  host: string;
  port: number;
  /** Path with query values removed (as in the audit record). */
  path: string;
  rule: { id: string; name: string; methods: string[] };
  reason: string;
  requestId: string;
  /** Secret names the request would carry (never values or handles). */
  secrets: string[];
}

export interface Approval extends ApprovalRequest {
  id: string;
  state: ApprovalState;
  created: number;
  /** When a pending entry times out. */
  deadline: number;
  by?: string;
  decidedAt?: number;
  /** allowed_for: until when the added rule entry allows. */
  until?: number;
  message?: string;
}

export type Verdict = { allow: true; note: ApprovalNote } | { allow: false; note: ApprovalNote };

export class ApprovalError extends Error {
  constructor(
    message: string,
    readonly status: 404 | 409 | 400,
  ) {
    super(message);
    this.name = 'ApprovalError';
  }
}

/** Largest number of requests waiting at once; past it new ones are refused (approvals_full). */
export const MAX_PENDING = 256;
const MAX_HISTORY = 200;
/** Longest "allow for" an operator can choose. */
export const MAX_ALLOW_FOR_MS = 30 * 24 * 3600_000;

interface Waiter {
  resolve: (v: Verdict) => void;
  timer: NodeJS.Timeout;
}

export class Approvals extends EventEmitter {
  private readonly entries = new Map<string, Approval>();
  private readonly waiters = new Map<string, Waiter>();

  constructor(
    /** Adds the rule entry for "allow for" (approval-rules.ts); rejects → the allow fails. */
    private readonly grant: (a: Approval, until: number) => Promise<void>,
    private readonly now: () => number = Date.now,
  ) {
    super();
  }

  pendingCount(): number {
    return this.waiters.size;
  }

  list(): Approval[] {
    return [...this.entries.values()].sort((a, b) => b.created - a.created);
  }

  get(id: string): Approval | undefined {
    return this.entries.get(id);
  }

  /**
   * Put a request to an operator. Resolves with the verdict; never rejects. `signal` aborts when
   * the client gives up (its entry becomes cancelled). Returns null when too many are waiting.
   */
  ask(req: ApprovalRequest, timeoutMs: number, signal: AbortSignal): Promise<Verdict> | null {
    if (this.waiters.size >= MAX_PENDING) return null;
    const id = randomBytes(6).toString('hex');
    const created = this.now();
    const a: Approval = { ...req, id, state: 'pending', created, deadline: created + timeoutMs };
    this.entries.set(id, a);
    this.trim();
    return new Promise<Verdict>((resolve) => {
      const timer = setTimeout(() => this.finish(id, { state: 'timed_out' }), timeoutMs);
      timer.unref();
      this.waiters.set(id, { resolve, timer });
      const onAbort = (): void => void this.finish(id, { state: 'cancelled' });
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      this.emit('change', a);
    });
  }

  async allow(id: string, by: string, forMs?: number): Promise<Approval> {
    const a = this.pending(id);
    if (forMs === undefined) return this.finish(id, { state: 'allowed_once', by });
    if (!Number.isFinite(forMs) || forMs < 1000 || forMs > MAX_ALLOW_FOR_MS)
      throw new ApprovalError(`"allow for" takes a duration between 1s and ${MAX_ALLOW_FOR_MS / 86_400_000}d`, 400);
    const until = this.now() + forMs;
    await this.grant(a, until);
    // The entry may have timed out or been cancelled while the rule was written: the rule stays
    // (the operator asked for it), this request keeps the state it reached.
    if (a.state !== 'pending') return a;
    return this.finish(id, { state: 'allowed_for', by, until });
  }

  deny(id: string, by: string, message?: string): Approval {
    this.pending(id);
    const msg = message
      ?.replace(/[\x00-\x1f\x7f]+/g, ' ')
      .trim()
      .slice(0, 500);
    return this.finish(id, { state: 'denied', by, ...(msg ? { message: msg } : {}) });
  }

  /** Every pending request ends as timed out (shutdown: nothing waits forever). */
  closeAll(): void {
    for (const id of [...this.waiters.keys()]) this.finish(id, { state: 'timed_out' });
  }

  private pending(id: string): Approval {
    const a = this.entries.get(id);
    if (!a) throw new ApprovalError(`no approval request ${id.slice(0, 40)}`, 404);
    if (a.state !== 'pending') throw new ApprovalError(`approval request ${id} is already ${a.state.replace('_', ' ')}`, 409);
    return a;
  }

  private finish(id: string, change: Partial<Approval> & { state: Exclude<ApprovalState, 'pending'> }): Approval {
    const a = this.entries.get(id)!;
    const w = this.waiters.get(id);
    if (a.state !== 'pending' || !w) return a;
    Object.assign(a, change, { decidedAt: this.now() });
    this.waiters.delete(id);
    clearTimeout(w.timer);
    const note: ApprovalNote = { id, decision: change.state };
    if (a.by) note.by = a.by;
    if (a.by) note.at = new Date(a.decidedAt!).toISOString();
    if (a.until) note.until = new Date(a.until).toISOString();
    if (a.message) note.message = a.message;
    w.resolve({ allow: change.state === 'allowed_once' || change.state === 'allowed_for', note });
    this.emit('change', a);
    return a;
  }

  private trim(): void {
    if (this.entries.size <= MAX_HISTORY + this.waiters.size) return;
    for (const [id, a] of this.entries) {
      if (a.state === 'pending') continue;
      this.entries.delete(id);
      if (this.entries.size <= MAX_HISTORY + this.waiters.size) break;
    }
  }
}
