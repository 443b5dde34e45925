/**
 * Developer aid: self time of a CPU profile kept by `bench/peers-profile.ts SCENARIO --keep`,
 * grouped by file (turret's dist/ modules, npm packages, Node internals, native) as a share of the
 * busy samples (idle excluded), so profiles taken at different loads compare.
 *
 *   node bench/profile-busy.mjs /tmp/turret-bench-prof-XXXX [lines]
 */
import { readFileSync, readdirSync } from 'node:fs';

const dir = process.argv[2];
if (!dir) throw new Error('usage: node bench/profile-busy.mjs PROFILE_DIR [lines]');
const file = readdirSync(dir).find((x) => x.endsWith('.cpuprofile'));
if (!file) throw new Error(`no .cpuprofile in ${dir}`);
const p = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8'));
const byId = new Map(p.nodes.map((x) => [x.id, x]));
const group = (url, fn) => {
  if (!url) return `(native) ${fn}`;
  if (url.includes('/dist/')) return `turret ${url.replace(/.*\/dist\//, '')}`;
  if (url.includes('node_modules/')) return url.replace(/.*node_modules\/([^/]+).*/, 'nm $1');
  return `node ${url.replace(/^node:internal\//, '')}`;
};
const self = new Map();
let idle = 0;
for (const id of p.samples) {
  const c = byId.get(id).callFrame;
  if (c.functionName === '(idle)') idle++;
  else self.set(group(c.url, c.functionName), (self.get(group(c.url, c.functionName)) ?? 0) + 1);
}
const busy = p.samples.length - idle;
const sums = { turret: 0, nm: 0, node: 0, native: 0 };
for (const [k, v] of self) sums[k.startsWith('turret') ? 'turret' : k.startsWith('nm') ? 'nm' : k.startsWith('node') ? 'node' : 'native'] += v;
const pct = (v) => `${((100 * v) / busy).toFixed(1).padStart(5)}%`;
console.log(`busy samples ${busy} of ${p.samples.length}`);
for (const [g, v] of Object.entries(sums)) console.log(`${pct(v)} ${g} (all)`);
const n = Number(process.argv[3] ?? 50);
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${pct(v)} ${k}`);
