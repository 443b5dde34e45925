/** The approval state machine (proxy/approvals.ts): every transition, and every refused one. */
import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Approvals, ApprovalError, MAX_PENDING, type ApprovalRequest } from '../../src/proxy/approvals.js';

const REQ: ApprovalRequest = {
  agent: 'bot',
  method: 'POST',
  scheme: 'https',
  host: 'api.example.com',
  port: 443,
  path: '/x?a=',
  rule: { id: 'r.yaml:3', name: 'ask', methods: ['POST'] },
  reason: 'asks',
  requestId: 'req1',
  secrets: [],
};

function make(grant: (until: number) => Promise<void> = async () => undefined): { ap: Approvals; grants: number[] } {
  const grants: number[] = [];
  const ap = new Approvals(
    async (_a, until) => {
      grants.push(until);
      await grant(until);
    },
    () => 1_000_000,
  );
  return { ap, grants };
}

const only = (ap: Approvals): string => ap.list()[0]!.id;

describe('approvals', () => {
  it('allow once resolves the waiter with the decider and time', async () => {
    const { ap } = make();
    const v = ap.ask(REQ, 60_000, new AbortController().signal)!;
    assert.equal(ap.pendingCount(), 1);
    await ap.allow(only(ap), 'console@127.0.0.1');
    const r = await v;
    assert.equal(r.allow, true);
    assert.equal(r.note.decision, 'allowed_once');
    assert.equal(r.note.by, 'console@127.0.0.1');
    assert.equal(r.note.at, new Date(1_000_000).toISOString());
    assert.equal(ap.pendingCount(), 0);
  });

  it('allow for adds the rule entry first, then resolves with until', async () => {
    const { ap, grants } = make();
    const v = ap.ask(REQ, 60_000, new AbortController().signal)!;
    await ap.allow(only(ap), 'cli', 3_600_000);
    assert.deepEqual(grants, [1_000_000 + 3_600_000]);
    const r = await v;
    assert.equal(r.note.decision, 'allowed_for');
    assert.equal(r.note.until, new Date(1_000_000 + 3_600_000).toISOString());
  });

  it('a failed rule write leaves the request pending and reports the error', async () => {
    const { ap } = make(async () => {
      throw new Error('disk full');
    });
    void ap.ask(REQ, 60_000, new AbortController().signal);
    await assert.rejects(ap.allow(only(ap), 'cli', 60_000), /disk full/);
    assert.equal(ap.list()[0]!.state, 'pending');
  });

  it('deny carries a cleaned message; a decided entry cannot be decided again', async () => {
    const { ap } = make();
    const v = ap.ask(REQ, 60_000, new AbortController().signal)!;
    const id = only(ap);
    ap.deny(id, 'console', 'not now\r\nX-Injected: 1');
    const r = await v;
    assert.equal(r.allow, false);
    assert.equal(r.note.message, 'not now X-Injected: 1');
    await assert.rejects(ap.allow(id, 'cli'), (e: unknown) => e instanceof ApprovalError && e.status === 409);
    assert.throws(
      () => ap.deny(id, 'cli'),
      (e: unknown) => e instanceof ApprovalError && e.status === 409,
    );
    assert.throws(
      () => ap.deny('nope', 'cli'),
      (e: unknown) => e instanceof ApprovalError && e.status === 404,
    );
  });

  it('bad "allow for" durations are refused', async () => {
    const { ap } = make();
    void ap.ask(REQ, 60_000, new AbortController().signal);
    for (const ms of [0, 999, Number.NaN, 400 * 86_400_000]) await assert.rejects(ap.allow(only(ap), 'cli', ms), (e: unknown) => e instanceof ApprovalError && e.status === 400);
  });

  it('times out, and a client that gives up cancels', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const { ap } = make();
      const v = ap.ask(REQ, 5_000, new AbortController().signal)!;
      mock.timers.tick(5_000);
      assert.equal((await v).note.decision, 'timed_out');
    } finally {
      mock.timers.reset();
    }
    const { ap } = make();
    const ctl = new AbortController();
    const v = ap.ask(REQ, 60_000, ctl.signal)!;
    ctl.abort();
    assert.equal((await v).note.decision, 'cancelled');
    const pre = new AbortController();
    pre.abort();
    assert.equal((await ap.ask(REQ, 60_000, pre.signal)!).note.decision, 'cancelled', 'already gone');
  });

  it('refuses past MAX_PENDING and ends every waiter on closeAll', async () => {
    const { ap } = make();
    const all = Array.from({ length: MAX_PENDING }, () => ap.ask(REQ, 60_000, new AbortController().signal));
    assert.ok(all.every((p) => p !== null));
    assert.equal(ap.ask(REQ, 60_000, new AbortController().signal), null);
    ap.closeAll();
    const done = await Promise.all(all);
    assert.ok(done.every((r) => r.note.decision === 'timed_out'));
    assert.equal(ap.pendingCount(), 0);
  });
});
