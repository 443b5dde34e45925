/**
 * Cost of the outbound secret check (src/proxy/stages/outbound.ts) on request bodies: a 32 MB
 * upload through a real turret (dist/) over an intercepted CONNECT tunnel, sent by curl, to a
 * local HTTPS upstream that discards it. Compared in one run, one turret process per mode, all running, uploads interleaved:
 *
 *   baseline  — a policy with no secret: nothing to look for, no check in the body path
 *   1 secret  — one known secret: every body byte passes the check before it is sent
 *   20 secrets— twenty known secrets (one RE2 alternation of all their forms)
 *
 * Reports upload throughput (MB/s, curl's average upload speed, median of 6 interleaved rounds)
 * and the proxy's peak RSS. Also the check alone (in-process, 64 KiB chunks) for 1 and 20 secrets.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compileScrubber } from '../src/scrub/scrubber.js';
import { startTurret, type TurretProc } from '../test/helpers/turret.js';
import { LOOPBACK, type RuleFile } from '../test/helpers/rules.js';
import { FIXTURES } from '../test/helpers/upstream.js';
import { curlThrough, peakRssMb } from './through-turret.js';
import { YOUNG_GENERATION_FLAG } from '../src/cli/heap.js';

const TOTAL = 32 * 1024 * 1024;
const ROUNDS = 6;

function rules(port: number, secrets: number): RuleFile {
  return {
    agents: ['bench'],
    ...(secrets > 0 ? { secrets: Array.from({ length: secrets }, (_v, i) => ({ name: `s${i}`, from: { env: `BENCH_S${i}` }, hosts: ['big.turret.test:*'] })) } : {}),
    rules: [{ name: 'up', methods: ['write'], hosts: [`big.turret.test:${port}`], unsafe_addresses: LOOPBACK }],
    local: ['big.turret.test'],
  };
}

async function upload(t: TurretProc, token: string, url: string, file: string): Promise<number> {
  const args = ['--data-binary', `@${file}`, '-H', 'Content-Type: application/octet-stream', url];
  const { code, values } = await curlThrough(t, token, '%{http_code} %{size_upload} %{speed_upload}', args);
  const [status, size, speed] = values;
  if (code !== 0 || status !== 200 || size !== TOTAL) throw new Error(`curl exited ${code}, status ${status}, ${size} bytes`);
  return (speed ?? 0) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

function inProcess(body: Buffer, secrets: number): Promise<number> {
  const known = Array.from({ length: secrets }, (_v, i) => ({ name: `s${i}`, value: `fake_${randomBytes(16).toString('hex')}`, replacement: 'x' }));
  const st = compileScrubber({ secrets: known, patterns: [] }).createStream();
  st.resume();
  const t0 = performance.now();
  for (let i = 0; i < TOTAL; i += 65536) {
    const off = i % body.length;
    st.write(body.subarray(off, Math.min(body.length, off + 65536)));
  }
  st.end();
  return new Promise((r) => st.on('end', () => r(TOTAL / 1e6 / ((performance.now() - t0) / 1000))));
}

export async function benchOutbound(): Promise<Record<string, number>> {
  // Text-like body: JSON lines with hex ids (many near-misses for a hex/base64 needle), 1 MiB repeated.
  const line = (i: number): string => `${JSON.stringify({ id: i, sha: randomBytes(20).toString('hex'), note: 'upload part', data: randomBytes(48).toString('base64') })}\n`;
  let text = '';
  for (let i = 0; text.length < 1 << 20; i++) text += line(i);
  const block = Buffer.from(text);
  const dir = mkdtempSync(path.join(tmpdir(), 'turret-bench-outbound-'));
  const file = path.join(dir, 'body.bin');
  writeFileSync(file, Buffer.concat(Array.from({ length: Math.ceil(TOTAL / block.length) }, () => block)).subarray(0, TOTAL));

  const up = https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, (req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', () => r()));
  const port = (up.address() as AddressInfo).port;
  const out: Record<string, number> = {};
  const modes = [
    ['baseline (no secret)', 0],
    ['1 secret', 1],
    ['20 secrets', 20],
  ] as const;
  const procs: Array<{ mode: string; t: TurretProc; token: string; runs: number[] }> = [];
  try {
    for (const [mode, n] of modes) {
      const env: Record<string, string> = {};
      for (let i = 0; i < n; i++) env[`BENCH_S${i}`] = `fake_${randomBytes(16).toString('hex')}`;
      const t = await startTurret({ rules: { 'bench.yaml': rules(port, n) }, env, args: ['--admin', 'off'], node: [YOUNG_GENERATION_FLAG] });
      const e = await t.cli(['env', '--agent', 'bench']);
      procs.push({ mode, t, token: decodeURIComponent(/HTTPS_PROXY='http:\/\/bench:([^@]+)@/.exec(e.stdout)?.[1] ?? ''), runs: [] });
    }
    const url = `https://big.turret.test:${port}/up`;
    for (const p of procs) await upload(p.t, p.token, url, file); // warm-up: leaf, pools, JIT
    // Interleaved rounds, starting with a different mode each round: on a shared machine load
    // drifts, and each mode sees the same drift and the same positions.
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < procs.length; k++) {
        const p = procs[(round + k) % procs.length]!;
        p.runs.push(await upload(p.t, p.token, url, file));
      }
    }
    for (const p of procs) {
      out[`proxy upload, ${p.mode}: MB/s`] = median(p.runs);
      out[`proxy upload, ${p.mode}: peak RSS MB`] = peakRssMb(p.t);
    }
  } finally {
    for (const p of procs) await p.t.stop();
    up.closeAllConnections();
    up.close();
  }
  out['ratio 1 secret / baseline'] = (out['proxy upload, 1 secret: MB/s'] ?? 0) / (out['proxy upload, baseline (no secret): MB/s'] ?? 1);
  out['ratio 20 secrets / baseline'] = (out['proxy upload, 20 secrets: MB/s'] ?? 0) / (out['proxy upload, baseline (no secret): MB/s'] ?? 1);
  out['check alone, 1 secret: MB/s'] = await inProcess(block, 1);
  out['check alone, 20 secrets: MB/s'] = await inProcess(block, 20);
  return out;
}
