/**
 * `npm run bench`: every benchmark, each reporting ratios against a baseline measured in the
 * same run. Only loopback is used. Results go to stdout; docs/benchmarks.md records them.
 */
import { benchDns } from './dns.js';
import { benchLeaf } from './leaf.js';
import { benchOutbound } from './outbound.js';
import { benchScrub } from './scrub.js';

const only = process.argv[2];
const benches: Record<string, () => Promise<Record<string, number>>> = { leaf: benchLeaf, dns: benchDns, scrub: benchScrub, outbound: benchOutbound };
benches['scrub-latency'] = async () => (await import('./scrub-latency.js')).benchScrubLatency(); // small requests during a 100 MB scrubbed download (scan off the event loop)
benches.audit = async () => (await import('./audit.js')).benchAudit(); // audit record build and writer cost per record, in process (issue #15)
benches.cpu = async () => (await import('./cpu.js')).benchCpu(); // turret CPU per small request (issue #15)
benches.state = async () => (await import('./state.js')).benchState(); // redis-server on loopback; one process vs --workers 2 (issue #16)
benches.sandbox = async () => (await import('./sandbox.js')).benchSandbox(); // turret run bridge cost; root + bubblewrap
benches.faults = async () => (await import('./faults.js')).benchFaults(); // idle tunnel fds/RSS, one agent's hung requests vs another (issue #13)
benches.peers = async () => (await import('./peers.js')).benchPeers(); // needs peer proxies installed; see docs/benchmarks.md

for (const [name, fn] of Object.entries(benches)) {
  if (only && only !== name) continue;
  const r = await fn();
  console.log(`\n## ${name}`);
  for (const [k, v] of Object.entries(r)) console.log(`${k.padEnd(52)} ${v.toFixed(3)}`);
}
