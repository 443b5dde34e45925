/**
 * The console's view of the audit stream: every record written is also kept (scrubbed, in its
 * normalised form) in a bounded ring, and pushed to live subscribers (server-sent events). The
 * file log stays the record of truth; this is a window onto its recent end.
 */
import { normalizeRecord, type AuditRecord } from '../../audit/record.js';
import type { AuditSink } from '../../audit/writer.js';

export const FEED_SIZE = 1000;

export type FeedListener = (rec: AuditRecord) => void;

export class RecordFeed {
  /**
   * Records as written, the last FEED_SIZE in a circle (`next` is where the next one goes);
   * normalised and scrubbed only when someone looks (the hot path only stores one).
   */
  private readonly ring: AuditRecord[] = [];
  private next = 0;
  private readonly listeners = new Set<FeedListener>();

  constructor(private readonly scrub: (s: string) => string) {}

  /**
   * The record as the console shows it: scrubbed. When the scrubber fails on it (a WebAssembly
   * trap, a bug), the fields that carry no request data only, as the audit log does
   * (audit/writer.ts): push() runs inside every audit write, in runExchange's `finally` and in
   * tunnels' 'close' handlers, where a throw ended the process
   * (test/integration/crash-console-feed.test.ts).
   */
  private clean(rec: AuditRecord): AuditRecord {
    try {
      return JSON.parse(this.scrub(JSON.stringify(normalizeRecord(rec)))) as AuditRecord;
    } catch {
      return { time: rec.time, event: rec.event, outcome: rec.outcome, agent: rec.agent, reason: 'console scrubber failed; record reduced' };
    }
  }

  push(rec: AuditRecord): void {
    // Overwritten in place once full: no shift of a thousand slots per record.
    if (this.ring.length < FEED_SIZE) this.ring.push(rec);
    else this.ring[this.next] = rec;
    this.next = (this.next + 1) % FEED_SIZE;
    if (this.listeners.size === 0) return;
    const clean = this.clean(rec);
    for (const l of this.listeners) l(clean);
  }

  /** The records oldest first. */
  private inOrder(): AuditRecord[] {
    return this.ring.length < FEED_SIZE ? this.ring.slice() : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }

  /** Newest first. */
  recent(n = FEED_SIZE): AuditRecord[] {
    return this.inOrder()
      .slice(-n)
      .reverse()
      .map((r) => this.clean(r));
  }

  find(requestId: string): AuditRecord | undefined {
    const all = this.inOrder();
    for (let i = all.length - 1; i >= 0; i--) if (all[i]?.request_id === requestId) return this.clean(all[i]!);
    return undefined;
  }

  subscribe(l: FeedListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

/** A sink that writes to `inner` and shows the record to the feed. */
export function teeToFeed(inner: AuditSink, feed: RecordFeed): AuditSink {
  return {
    write(rec) {
      inner.write(rec);
      feed.push(rec);
    },
    close: () => inner.close(),
  };
}
