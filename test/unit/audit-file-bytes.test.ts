/**
 * The file log's lines are made in two halves (the event loop serialises, the writer thread chains:
 * src/audit/line.ts), the memory sink's in one (formatChainLine). Through the real writer thread,
 * the files must hold exactly the memory sink's lines, byte for byte, for hostile records: every
 * kind of text JSON escapes or does not (control characters, quotes, U+2028/2029, lone and split
 * surrogates, 3- and 4-byte UTF-8), fields over the 4 096-character cap (cut inside a surrogate
 * pair), many fingerprints, and a fake secret the scrubber rewrites in names and values; with the
 * ring too small for the burst (records wait in batches for room), files rotating every few KiB,
 * the writer thread stopped mid-burst (a new one goes on from the ring), and the log closed and
 * opened again (the chain goes on from the last line on disk).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import type { AuditRecord } from '../../src/audit/record.js';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { memorySink, openAuditLog, writerThreadOf } from '../../src/audit/writer.js';
import { scrubRecordText } from '../../src/proxy/record-scrub.js';

const root = mkdtempSync(path.join(tmpdir(), 'turret-file-bytes-'));
after(() => rmSync(root, { recursive: true, force: true }));
// The log's writer threads are unref'd, and this test waits for them.
const keepAlive = setInterval(() => undefined, 1 << 30);
after(() => clearInterval(keepAlive));

const SECRET = `fake_${randomBytes(12).toString('hex')}`;
const scrub = (r: AuditRecord): AuditRecord => scrubRecordText(r, (s) => s.split(SECRET).join('[REDACTED]'));
const TEXTS = [
  'plain',
  'é€😀 and 𝄞',
  'lone \ud800 high, lone \udfff low, reversed \udc00\ud800',
  'ctl \u0000\u0001\b\f\n\r\t\u001f\u007f\u0085',
  'quote " back \\ slash / solidus',
  'line \u2028 para \u2029 bom \ufeff',
  `secret ${SECRET} twice ${SECRET}`,
  // The cap (4 096 units) falls between the halves of a surrogate pair.
  `${'a'.repeat(4095)}😀${'b'.repeat(10)}`,
  '€'.repeat(5000),
];

function record(i: number): AuditRecord {
  const t = TEXTS[i % TEXTS.length]!;
  const u = TEXTS[(i * 7 + 3) % TEXTS.length]!;
  return {
    time: new Date(1_764_547_200_000 + i).toISOString(),
    event: 'request',
    outcome: i % 5 === 0 ? 'denied' : 'completed',
    agent: i % 4 === 0 ? null : u.slice(0, 40),
    method: 'POST',
    scheme: 'https',
    host: `h.${t.slice(0, 30)}`,
    port: 443,
    path: `/p/${t}?q=${SECRET}&${u.slice(0, 9)}=1#frag`,
    rule: i % 3 === 0 ? null : 'r',
    reason: t,
    status: 200,
    duration_ms: i / 7,
    secrets: [u.slice(0, 20), SECRET],
    fingerprints: Object.fromEntries(Array.from({ length: i % 6 }, (_, k) => [`${u.slice(0, 8)}${k}${SECRET}`, t.slice(0, 12)])),
    request_id: randomBytes(8).toString('hex'),
  };
}

/** Every line of the log's files, oldest file first (rotated ones are path.N … path.1, then path). */
function filesInOrder(file: string): string[] {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const num = (f: string): number => (f === base ? 0 : Number(f.slice(base.length + 1)));
  return readdirSync(dir)
    .filter((f) => f === base || f.startsWith(`${base}.`))
    .sort((a, b) => num(b) - num(a))
    .map((f) => path.join(dir, f));
}

it('the file log writes exactly the memory sink lines: hostile text, the scrubber, a full ring, rotation, a stopped thread, a reopen', async () => {
  const file = path.join(root, 'audit.jsonl');
  const mem = memorySink({ scrub });
  const errors: string[] = [];
  const open = () => openAuditLog({ path: file, scrub, ringBytes: 64 * 1024, maxBytes: 8 * 1024, maxFiles: 10_000, onError: (e) => errors.push(e.message) });
  let i = 0;
  const burst = (log: { write(r: AuditRecord): void }, k: number): void => {
    for (let end = i + k; i < end; i++) {
      const r = record(i);
      log.write(r);
      mem.write(r);
    }
  };
  let log = await open();
  burst(log, 150); // far more than 64 KiB: most wait for room in the ring
  const stopped = writerThreadOf(log)?.terminate();
  burst(log, 50);
  await stopped;
  burst(log, 50);
  await log.flush();
  await assert.rejects(log.close(), /stopped/);
  assert.equal(errors.length, 1, errors.join('\n'));
  log = await open();
  burst(log, 60);
  await log.close();
  assert.equal(errors.length, 1, errors.join('\n'));

  const files = filesInOrder(file);
  assert.ok(files.length > 20, `rotated: ${files.length} files`);
  const text = files.map((f) => readFileSync(f, 'utf8')).join('');
  assert.ok(!text.includes(SECRET), 'the secret reached the log');
  const want = mem.lines.join('');
  assert.equal(text.length, want.length);
  // The first line that differs, rather than two megabytes of diff.
  const got = text.split('\n');
  want.split('\n').forEach((l, k) => assert.equal(got[k], l, `line ${k + 1}`));
  assert.ok(Buffer.concat(files.map((f) => readFileSync(f))).equals(Buffer.from(want, 'utf8')), 'the bytes differ');
  const v = await verifyAuditFiles(files);
  assert.equal(v.ok, true, JSON.stringify(v.problem));
  assert.equal(v.records, i);
  assert.equal(v.startsAtGenesis, true);
});
