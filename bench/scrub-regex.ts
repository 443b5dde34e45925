/**
 * Developer aid (not registered in bench/run.ts): where the scrubber's regex time goes on a body,
 * per pattern (calls, bytes handed to RE2, ms). The body is the scrub bench's JSON block
 * (bench/scrub.ts jsonBlock), or with `prose` the same objects with an English sentence ending
 * in "docs." as their body; 20 MiB in 64 KiB writes. Run it in two checkouts to compare builds:
 *
 *   node --import tsx bench/scrub-regex.ts [prose]
 */
import { randomBytes } from 'node:crypto';
import { compileScrubber } from '../src/scrub/scrubber.js';
import { BUILTIN_PATTERNS, compilePatterns } from '../src/scrub/patterns.js';
import { jsonBlock } from './scrub.js';

const prose = process.argv[2] === 'prose';
const body = prose ? Buffer.from(jsonBlock().toString('latin1').replaceAll('password policy.', 'password policy; see the docs.'), 'latin1') : jsonBlock();
const patterns = compilePatterns(BUILTIN_PATTERNS);
const stats = new Map<string, { calls: number; bytes: number; ms: number }>();
for (const p of patterns) {
  const re = p.re as unknown as { exec: (b: Buffer) => unknown; lastIndex: number };
  const exec = re.exec.bind(re);
  re.exec = (b: Buffer): unknown => {
    const st = stats.get(p.id) ?? { calls: 0, bytes: 0, ms: 0 };
    st.calls++;
    st.bytes += b.length - re.lastIndex;
    const t0 = performance.now();
    const r = exec(b);
    st.ms += performance.now() - t0;
    stats.set(p.id, st);
    return r;
  };
}
const s = compileScrubber({ secrets: [{ name: 'b', value: `fake_${randomBytes(16).toString('hex')}`, replacement: 'H' }], patterns });
const inc = s.createIncremental();
const t0 = performance.now();
const total = 20 * 1024 * 1024;
for (let sent = 0; sent < total;) {
  const off = sent % body.length;
  const n = Math.min(65536, body.length - off, total - sent);
  inc.write(body.subarray(off, off + n));
  sent += n;
}
inc.end();
console.log(`${prose ? 'prose' : 'json'}: ${(performance.now() - t0).toFixed(0)} ms for 20 MiB`);
for (const [id, v] of [...stats].sort((a, b) => b[1].ms - a[1].ms).slice(0, 6))
  console.log(`  ${id}: ${v.calls} calls, ${(v.bytes / 1e6).toFixed(1)} MB to RE2, ${v.ms.toFixed(1)} ms`);
