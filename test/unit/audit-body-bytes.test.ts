/**
 * The file log writes a record's body as UTF-8 bytes straight into the hand-over ring's free room
 * (audit/json-out.ts, ring.ts room/commit, writer.ts bodyInto, proxy/record-scrub.ts
 * scrubbedBodyInto). What must hold: the bytes are JSON.stringify's wherever the room ends (a
 * body that outgrows it moves whole), nothing is written past the room (the rest of the ring holds
 * entries the writer thread has not written yet), every line is the one-pass string body's byte for
 * byte, no spelling of a secret reaches the file from any field, a scrubber that throws half way
 * leaves no part of its body, a record written from inside a scrubber lands whole and in order,
 * the chain verifies as `turret audit verify` checks it (across a reopen too), and a full disk is
 * reported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { verifyAuditChains } from '../../src/audit/chains.js';
import { JsonOut } from '../../src/audit/json-out.js';
import { CON, createRing, PUB, RingReader, RingWriter } from '../../src/audit/ring.js';
import type { AuditRecord } from '../../src/audit/record.js';
import { openAuditLog, type AuditLog } from '../../src/audit/writer.js';
import { keyRingFrom } from '../../src/secrets/keys.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../../src/scrub/patterns.js';
import { compileScrubber } from '../../src/scrub/scrubber.js';
import { scrubUnlessClean } from '../../src/proxy/clean-strings.js';
import { recordLine } from '../../src/proxy/record-line.js';
import { scrubbedBody, scrubbedBodyInto } from '../../src/proxy/record-scrub.js';
import { recordCarriers, secretForms } from '../helpers/record-secrets.js';

const keys = keyRingFrom(randomBytes(32));
const secret = `fake_${randomBytes(16).toString('hex')}`;
const scrubber = compileScrubber({ secrets: [{ name: 's', value: secret, replacement: '[REDACTED:secret:s]' }], patterns: compilePatterns(BUILTIN_PATTERNS) });
// start.ts's record filter: the scrubber behind the clean-string memo.
const full = (s: string): string => recordLine(keys, scrubber, s);
const text = (s: string): string => scrubUnlessClean(scrubber, s, full);
const forms = secretForms(secret);

const strings = [
  '',
  'plain',
  ...Array.from({ length: 128 }, (_, c) => `a${String.fromCharCode(c)}b`),
  'é',
  '日本語',
  '😀 emoji',
  'lone \ud800 high',
  '\udc00 lone low',
  'x'.repeat(5000),
  `${'y'.repeat(3000)}"`,
  `\u2028\u2029\u007f\u0080\uffff`,
];
const numbers = [0, -0, 1, 9, 10, 99, 100, 443, 8443, 2147483647, 2147483648, -1, -2147483648, 0.1, 0.4, 12.3, 1e21, 1.5e-7, Number.MAX_SAFE_INTEGER, 4294967295];

test('JsonOut gives JSON.stringify of every string and String of every number, wherever its room ends, and never writes past it', () => {
  const pieces: Array<[string, (o: JsonOut) => void]> = [
    ...strings.map((s): [string, (o: JsonOut) => void] => [JSON.stringify(s), (o) => o.quoted(s)]),
    ...numbers.map((n): [string, (o: JsonOut) => void] => [String(n), (o) => o.number(n)]),
    ...strings.map((s): [string, (o: JsonOut) => void] => [s, (o) => o.text(s)]),
  ];
  const area = Buffer.alloc(16_000);
  const o = new JsonOut(16);
  for (const [expected, write] of pieces) {
    const want = Buffer.from(`{"k":${expected}}`);
    // Every room from none to more than enough; the longest pieces at a few sizes only.
    const rooms = want.length < 64 ? Array.from({ length: want.length + 4 }, (_, i) => i) : [0, 1, 7, want.length - 1, want.length, want.length + 8];
    for (const room of rooms) {
      area.fill(0xee);
      o.into(area, 100, 100 + room);
      o.ascii('{"k":');
      write(o);
      o.ascii('}');
      assert.deepEqual(o.bytes(), want, `${expected.slice(0, 40)} in ${room}`);
      assert.equal(o.toString(), want.toString());
      // A body that does not fit has moved out of the room (one that fits may have too: the room is
      // checked against 3 bytes per UTF-16 unit for what is not plain ASCII).
      if (want.length > room) assert.ok(o.spilled, `${expected.slice(0, 40)} in ${room}`);
      // Nothing before the room, nothing after it; inside it only the bytes of a body that fit.
      const outside = Buffer.concat([area.subarray(0, 100), area.subarray(100 + room)]);
      assert.ok(
        outside.every((b) => b === 0xee),
        `${expected.slice(0, 40)} in ${room}: a byte outside the room`,
      );
      if (!o.spilled) assert.deepEqual(area.subarray(100, 100 + want.length), want);
    }
    o.reset();
    write(o);
    assert.equal(o.toString(), Buffer.from(expected).toString());
  }
});

function tmp(): string {
  return mkdtempSync(path.join(tmpdir(), 'turret-body-bytes-'));
}

/** The `{...}` body of a chained line: what chainBody gave before seq, prev and the hash went in. */
function bodyOfLine(line: string): string {
  const prevEnd = line.indexOf('",', line.indexOf('"prev":"')) + 2;
  return `{${line.slice(prevEnd, line.lastIndexOf(',"hash":"'))}}`;
}

/** Records with the secret in each field that can carry one, in each spelling, of varied lengths (so the ring's room ends everywhere). */
function hostileRecords(n0: number): AuditRecord[] {
  const out: AuditRecord[] = [];
  let n = n0;
  for (const [, make] of recordCarriers) {
    for (const form of Object.values(forms)) {
      for (const pad of [0, 1, 7, 50, 333]) {
        const filler = strings[(n * 7) % strings.length]!.slice(0, 200 + pad);
        out.push({
          time: `2026-12-02T00:00:00.${String(n % 1000).padStart(3, '0')}Z`,
          event: 'request',
          outcome: 'completed',
          agent: 'a',
          method: 'GET',
          scheme: 'https',
          host: 'h.example',
          port: 443,
          path: `/p/${'z'.repeat(pad)}`,
          rule: 'r',
          reason: `ok ${filler}`,
          status: 200,
          bytes_in: n,
          bytes_out: n * 3,
          duration_ms: n / 10,
          client: '127.0.0.1:1',
          tunnel_id: 'aaaaaaaa00000001',
          request_id: `aaaaaaaa${n.toString(16).padStart(8, '0')}`,
          ...make(form),
        });
        n++;
      }
    }
  }
  return out;
}

function assertNoSecret(file: string): void {
  const all = readFileSync(file, 'utf8');
  for (const [what, f] of Object.entries(forms)) assert.ok(!all.includes(f), `${what} reached the file`);
  assert.ok(!all.toLowerCase().includes(secret), 'the secret reached the file');
}

async function verified(file: string, records: number): Promise<void> {
  const [r] = await verifyAuditChains([file]);
  assert.equal(r?.ok, true, JSON.stringify(r?.problem));
  assert.equal(r?.records, records);
  assert.equal(r?.startsAtGenesis, true);
}

const bodyInto = (rec: AuditRecord, out: JsonOut): void => scrubbedBodyInto(rec, text, out);

test('a small ring, hostile records written in one go: every line is the string body byte for byte, no spelling of the secret, the chain verifies across a reopen', async () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'audit.jsonl');
    const first = hostileRecords(1);
    // A 4 KiB ring holds a few of these: written without a pause, it fills (the rest wait in
    // batches), its room ends at every offset and wraps hundreds of times.
    let log: AuditLog = await openAuditLog({ path: file, ringBytes: 4096, bodyInto });
    for (const r of first) log.write(r);
    await log.close();
    const second = hostileRecords(first.length + 1).slice(0, 100);
    log = await openAuditLog({ path: file, ringBytes: 4096, bodyInto });
    for (const r of second) {
      log.write(r);
      // Half of these one at a time, so each goes into the ring as it is written.
      if (r.bytes_in! % 2 === 0) await log.flush();
    }
    await log.close();
    const all = [...first, ...second];
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, all.length);
    lines.forEach((l, i) => {
      assert.equal(bodyOfLine(l), scrubbedBody(all[i]!, text), `line ${i + 1}`);
      assert.equal((JSON.parse(l) as { seq: number }).seq, i + 1);
    });
    assertNoSecret(file);
    await verified(file, all.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a scrubber that throws half way through a body leaves none of it: the record is reduced, the chain verifies', async () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'audit.jsonl');
    const boom = (s: string): string => {
      if (s.includes('BOOM')) throw new Error('scrubber bug');
      return text(s);
    };
    const log = await openAuditLog({ path: file, ringBytes: 4096, bodyInto: (rec, out) => scrubbedBodyInto(rec, boom, out) });
    // Not the records with the secret in `agent`: a reduced record keeps the agent's name, which is
    // the policy's, not request data (writer.ts reduced()).
    const recs = hostileRecords(1).slice(30, 120);
    // The throw comes late in the body (alert_secret), after the secret went in scrubbed and, for
    // the long ones, after the body outgrew the ring's room.
    recs.forEach((r, i) => {
      if (i % 3 === 0) r.alert_secret = `BOOM ${forms.raw}`;
      if (i % 6 === 0) r.path = `/long/${'q'.repeat(2500)}`;
    });
    for (const r of recs) log.write(r);
    await log.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, recs.length);
    lines.forEach((l, i) => {
      const parsed = JSON.parse(l) as Record<string, unknown>;
      if (i % 3 === 0) {
        assert.deepEqual(Object.keys(parsed), ['seq', 'prev', 'time', 'event', 'outcome', 'agent', 'reason', 'hash'], `line ${i + 1}`);
        assert.match(String(parsed.reason), /scrubber failed; record reduced/);
      } else assert.equal(bodyOfLine(l), scrubbedBody(recs[i]!, text), `line ${i + 1}`);
    });
    assertNoSecret(file);
    await verified(file, recs.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a record written from inside a scrubber (while a body is in the ring) lands whole, before the one being written', async () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'audit.jsonl');
    const recs = hostileRecords(1).slice(0, 40);
    const inner = (i: number): AuditRecord => ({ time: '2026-12-02T00:00:01.000Z', event: 'request', outcome: 'denied', agent: `inner ${i}`, reason: `nested ${forms.base64}` });
    let log: AuditLog | null = null;
    let nestedCount = 0;
    const reentrant = (s: string): string => {
      // Once per outer record, while its body is half written.
      if (s.startsWith('ok ') && log !== null) log.write(inner(nestedCount++));
      return text(s);
    };
    log = await openAuditLog({ path: file, ringBytes: 4096, bodyInto: (rec, out) => scrubbedBodyInto(rec, reentrant, out) });
    for (const r of recs) {
      log.write(r);
      if (r.bytes_in! % 4 === 0) await log.flush();
    }
    await log.close();
    assert.equal(nestedCount, recs.length);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 2 * recs.length);
    lines.forEach((l, i) => {
      const k = Math.floor(i / 2);
      // scrubbedBody with the plain filter: the same bytes, without writing another record.
      const want = i % 2 === 0 ? scrubbedBody(inner(k), text) : scrubbedBody(recs[k]!, text);
      assert.equal(bodyOfLine(l), want, `line ${i + 1}`);
    });
    assertNoSecret(file);
    await verified(file, lines.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a full disk under the byte body: reported with its code, and close() rejects', async () => {
  // /dev/full accepts open and fails every write with ENOSPC (Linux).
  const errors: Error[] = [];
  const log = await openAuditLog({ path: '/dev/full', bodyInto, onError: (e) => errors.push(e) });
  for (const r of hostileRecords(1).slice(0, 10)) log.write(r);
  await log.flush();
  assert.equal((errors[0] as NodeJS.ErrnoException | undefined)?.code, 'ENOSPC');
  assert.match(errors[0]!.message, /records 1 to \d+ are lost/);
  await assert.rejects(log.close(), (e: unknown) => (e as NodeJS.ErrnoException).code === 'ENOSPC');
});

test('a body written into the ring room: committed whole or not at all, never past the consumed position or the end, read back in order', () => {
  const SIZE = 4096;
  const sab = createRing(SIZE);
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  const ctl = new Int32Array(sab, 0, 2);
  const out = new JsonOut(64);
  const sent: string[] = [];
  let got = 0;
  const readAll = (): void => {
    for (let e = r.next(); e !== null; e = r.next()) {
      const t = r.text(e).toString('latin1');
      assert.equal(e.first, got + 1);
      assert.equal(t, `${sent[got]}\n`, `entry ${got + 1}`);
      got++;
    }
    r.consume();
  };
  let committed = 0;
  // Lengths that end a body at every byte of the room's last 8, at every offset, the ring filling
  // up until a publish is refused, then emptied.
  for (let k = 1; k <= 3000; k++) {
    const body = `${k}:${'abcdefgh'.repeat(40)}`.slice(0, 1 + ((k * 37) % 300));
    sent.push(body);
    w.room(out);
    out.ascii(body);
    if (w.commit(out, k, k)) committed++;
    else if (!w.publish(out.bytes(), body.length + 1, k, k, true)) {
      readAll();
      assert.ok(w.publish(Buffer.from(body), body.length + 1, k, k, true));
    }
    const used = (Atomics.load(ctl, PUB) - Atomics.load(ctl, CON)) | 0;
    assert.ok(used >= 0 && used <= SIZE, `entry ${k}: ${used} bytes in use`);
  }
  readAll();
  assert.equal(got, sent.length);
  assert.ok(committed > sent.length / 2, `${committed} written in place`);
});

test('a body is not committed where the ring has published something else since room() gave it its place', () => {
  const sab = createRing(4096);
  const w = new RingWriter(sab);
  const r = new RingReader(sab);
  const out = new JsonOut();
  w.room(out);
  out.ascii('{"first":1}');
  assert.ok(w.publish('{"other":2}', 12, 1, 1, true));
  assert.equal(w.commit(out, 2, 2), false);
  const e = r.next();
  assert.equal(e === null ? null : r.text(e).toString(), '{"other":2}\n');
  assert.equal(r.next(), null);
  // Written in its own buffer: not in the ring, not committed.
  out.reset();
  out.ascii('{"own":3}');
  assert.equal(w.commit(out, 2, 2), false);
  assert.equal(r.next(), null);
});
