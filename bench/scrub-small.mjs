/**
 * Developer aid (not registered in bench/run.ts): the cost of one short scrub call, as the hot
 * path makes them (a small body, header values, audit fields): `scrubBuffer` on inputs of 16–1,000
 * bytes of API-like text (234: the peers bench's small body's size), 200,000 calls each after a warm-up, with the built-in patterns and one
 * known secret. Takes a build's dist/ directory, so two builds can be compared alternately:
 *
 *   node bench/scrub-small.mjs dist
 *   node bench/scrub-small.mjs /path/to/other/checkout/dist
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = pathToFileURL(path.resolve(process.argv[2] ?? 'dist')).href;
const { compileScrubber } = await import(`${dist}/scrub/scrubber.js`);
const { builtinPatterns } = await import(`${dist}/proxy/stages/scrubbing.js`);
const s = compileScrubber({ secrets: [{ name: 'bench-token', value: `fake_${randomBytes(16).toString('hex')}`, replacement: '[R]' }], patterns: builtinPatterns() });
const text =
  'https://api.example.test/repos/org/repo/issues/4242 application/json; charset=utf-8 Mon, 30 Nov 2026 10:00:00 GMT keep-alive W/"abc123def456" max-age=0, private, must-revalidate {"id":4242,"login":"octo-bench","state":"open"}';
const out = [];
for (const len of [16, 32, 64, 128, 234, 500, 1000]) {
  const b = Buffer.from(text.repeat(5).slice(0, len));
  for (let i = 0; i < 20_000; i++) s.scrubBuffer(b);
  const n = 200_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) s.scrubBuffer(b);
  out.push(`${len} B: ${(Number(process.hrtime.bigint() - t0) / n).toFixed(0)} ns`);
}
console.log(out.join(', '));
