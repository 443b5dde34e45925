/**
 * Turns the rows of `npm run bench -- peers` into markdown tables (printed, ready for
 * docs/benchmarks.md) and the flat name → number record that bench/run.ts prints. Ratios are
 * against the direct row and the turret row of the same run; a missing cell is "—".
 */
export interface Row {
  subject: string;
  /** '' for a subject's main row; e.g. 'with handle injection' for an HTTPS-only variant. */
  variant: string;
  httpRps?: number;
  httpP50?: number;
  httpP99?: number;
  wrkRps?: number;
  wrkP50?: number;
  wrkP99?: number;
  httpMBs?: number;
  httpsRps?: number;
  httpsP50?: number;
  httpsP99?: number;
  httpsMBs?: number;
  newHostMs?: number;
  knownHostMs?: number;
  cpuPer1k?: number;
  cpuHttpPer1k?: number;
  idleRssMb?: number;
  peakRssMb?: number;
}

type Metric = Exclude<keyof Row, 'subject' | 'variant'>;

const UNITS: Record<Metric, string> = {
  httpRps: 'HTTP small req/s (undici)',
  httpP50: 'HTTP small p50 ms',
  httpP99: 'HTTP small p99 ms',
  wrkRps: 'HTTP small req/s (wrk)',
  wrkP50: 'HTTP small p50 ms (wrk)',
  wrkP99: 'HTTP small p99 ms (wrk)',
  httpMBs: 'HTTP 10 MB MB/s',
  httpsRps: 'HTTPS small req/s',
  httpsP50: 'HTTPS small p50 ms',
  httpsP99: 'HTTPS small p99 ms',
  httpsMBs: 'HTTPS 10 MB MB/s',
  newHostMs: 'HTTPS new host first request ms',
  knownHostMs: 'HTTPS new connection, known host ms',
  cpuPer1k: 'proxy CPU ms per 1000 HTTPS req',
  cpuHttpPer1k: 'proxy CPU ms per 1000 HTTP req',
  idleRssMb: 'proxy RSS after start MB',
  peakRssMb: 'proxy peak RSS MB',
};

const RATIO_METRICS: Metric[] = ['httpRps', 'wrkRps', 'httpsRps', 'httpMBs', 'httpsMBs'];

function fmt(v: number | undefined, digits = 0): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  return v >= 100 ? Math.round(v).toLocaleString('en-US').replace(/,/g, ' ') : v.toFixed(Math.max(digits, v < 1 ? 3 : v < 10 ? 2 : 1));
}

function ratio(v: number | undefined, base: number | undefined): string {
  return v === undefined || base === undefined || !base ? '—' : `${(v / base).toFixed(2)}×`;
}

const label = (r: Row): string => (r.variant ? `${r.subject}, ${r.variant}` : r.subject);
const lat = (p50?: number, p99?: number): string => `${fmt(p50)} / ${fmt(p99)}`;
const per = (per1k?: number): number | undefined => (per1k === undefined ? undefined : per1k / 1000);

export function printTables(rows: Row[], notes: string[], extra: Record<string, number>): Record<string, number> {
  const direct = rows.find((r) => r.subject.startsWith('direct'));
  const turret = rows.find((r) => r.subject === 'turret' && !r.variant);
  const out: string[] = [];
  out.push('| path | HTTP req/s (undici) | p50 / p99 ms | HTTP req/s (wrk) | p50 / p99 ms | HTTPS req/s | p50 / p99 ms | proxy CPU ms per request, HTTP / HTTPS |');
  out.push('|---|---|---|---|---|---|---|---|');
  for (const r of rows)
    out.push(
      `| ${label(r)} | ${fmt(r.httpRps)} | ${lat(r.httpP50, r.httpP99)} | ${fmt(r.wrkRps)} | ${lat(r.wrkP50, r.wrkP99)} | ${fmt(r.httpsRps)} | ${lat(r.httpsP50, r.httpsP99)} | ${fmt(per(r.cpuHttpPer1k))} / ${fmt(per(r.cpuPer1k))} |`,
    );
  out.push('', '| path | HTTP 10 MB MB/s | HTTPS 10 MB MB/s | new HTTPS host, first request ms | new connection, known host ms | proxy RSS after start / peak MB |');
  out.push('|---|---|---|---|---|---|');
  for (const r of rows.filter((x) => !x.variant && (x.httpsMBs !== undefined || x.newHostMs !== undefined)))
    out.push(`| ${label(r)} | ${fmt(r.httpMBs)} | ${fmt(r.httpsMBs)} | ${fmt(r.newHostMs)} | ${fmt(r.knownHostMs)} | ${fmt(r.idleRssMb)} / ${fmt(r.peakRssMb)} |`);
  out.push('', `| ratio to direct / to turret | ${RATIO_METRICS.map((m) => UNITS[m]).join(' | ')} |`, `|---|${RATIO_METRICS.map(() => '---').join('|')}|`);
  for (const r of rows) out.push(`| ${label(r)} | ${RATIO_METRICS.map((m) => `${ratio(r[m], direct?.[m])} / ${ratio(r[m], turret?.[m])}`).join(' | ')} |`);
  for (const n of notes) out.push('', `- ${n}`);
  for (const [k, v] of Object.entries(extra)) out.push(`- ${k}: ${v.toFixed(2)}`);
  console.log(`\n${out.join('\n')}`);

  const rec: Record<string, number> = {};
  for (const r of rows) {
    for (const m of Object.keys(UNITS) as Metric[]) {
      const v = r[m];
      if (v === undefined) continue;
      rec[`${label(r)}: ${UNITS[m]}`] = v;
      if (RATIO_METRICS.includes(m) && direct?.[m]) rec[`${label(r)}: ${UNITS[m]} ratio to direct`] = v / direct[m];
      if (RATIO_METRICS.includes(m) && turret?.[m]) rec[`${label(r)}: ${UNITS[m]} ratio to turret`] = v / turret[m];
    }
  }
  for (const n of notes) rec[n] = NaN;
  return { ...rec, ...extra };
}
