/**
 * A tiny authoritative-only DNS server over UDP on 127.0.0.1 (port 0) for tests and benchmarks:
 * answers A and AAAA from a handler, with controlled TTLs, NXDOMAIN, SERVFAIL or silence, and
 * counts every query. Enough of RFC 1035 §4 for c-ares (dns.promises.Resolver + setServers);
 * no recursion, no compression in questions, no EDNS (an OPT record in the query is ignored).
 */
import dgram from 'node:dgram';
import net from 'node:net';

export type QType = 'A' | 'AAAA' | 'OTHER';

export type DnsAnswer =
  /** NOERROR with these addresses (those of the queried family are sent; empty = NODATA). */
  | { addresses: string[]; ttl?: number }
  | 'nxdomain'
  | 'servfail'
  /** No reply at all (the client times out). */
  | 'drop';

/** Called per query with the lower-cased name (no trailing dot) and how often it was asked before. */
export type DnsHandler = (name: string, type: QType, nth: number) => DnsAnswer;

export interface DnsServer {
  port: number;
  /** "127.0.0.1:PORT", for settings.dns_servers / Resolver.setServers. */
  address: string;
  /** Queries received per "name/TYPE". */
  queries: Map<string, number>;
  count(name: string, type?: QType): number;
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_AAAA = 28;

interface Question {
  id: number;
  rd: boolean;
  name: string;
  qtype: number;
  qclass: number;
  /** The question section bytes, echoed in the reply. */
  raw: Buffer;
}

/** Parse the header and first question; null for anything that is not a plain query. */
export function parseQuery(msg: Buffer): Question | null {
  if (msg.length < 12) return null;
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return null; // a response, not a query
  if (msg.readUInt16BE(4) < 1) return null;
  const labels: string[] = [];
  let i = 12;
  for (;;) {
    const len = msg[i];
    if (len === undefined || len > 63) return null; // pointers are never valid in a question here
    i++;
    if (len === 0) break;
    if (i + len > msg.length) return null;
    labels.push(msg.subarray(i, i + len).toString('latin1'));
    i += len;
  }
  if (i + 4 > msg.length) return null;
  const qtype = msg.readUInt16BE(i);
  const qclass = msg.readUInt16BE(i + 2);
  return { id, rd: (flags & 0x0100) !== 0, name: labels.join('.').toLowerCase(), qtype, qclass, raw: msg.subarray(12, i + 4) };
}

function rdata(address: string): Buffer {
  if (net.isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  // Expand "::" and an embedded dotted quad into 8 groups.
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const b = dotted[1].split('.').map(Number);
    text = text.slice(0, -dotted[1].length) + `${(((b[0] ?? 0) << 8) | (b[1] ?? 0)).toString(16)}:${(((b[2] ?? 0) << 8) | (b[3] ?? 0)).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, k) => out.writeUInt16BE(parseInt(g, 16), k * 2));
  return out;
}

export function buildReply(q: Question, rcode: number, answers: Array<{ type: number; ttl: number; data: Buffer }>): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  // QR=1, AA=1, RD copied, RA=1, rcode.
  header.writeUInt16BE(0x8000 | 0x0400 | (q.rd ? 0x0100 : 0) | 0x0080 | (rcode & 0xf), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  const rrs = answers.map((a) => {
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question name at offset 12
    rr.writeUInt16BE(a.type, 2);
    rr.writeUInt16BE(1, 4); // class IN
    rr.writeUInt32BE(a.ttl >>> 0, 6);
    rr.writeUInt16BE(a.data.length, 10);
    return Buffer.concat([rr, a.data]);
  });
  return Buffer.concat([header, q.raw, ...rrs]);
}

export async function startDnsServer(handler: DnsHandler): Promise<DnsServer> {
  const sock = dgram.createSocket('udp4');
  const queries = new Map<string, number>();
  sock.on('message', (msg, rinfo) => {
    const q = parseQuery(msg);
    if (!q) return;
    const type: QType = q.qtype === TYPE_A ? 'A' : q.qtype === TYPE_AAAA ? 'AAAA' : 'OTHER';
    const key = `${q.name}/${type}`;
    const nth = queries.get(key) ?? 0;
    queries.set(key, nth + 1);
    let answer: DnsAnswer;
    try {
      answer = type === 'OTHER' || q.qclass !== 1 ? { addresses: [] } : handler(q.name, type, nth);
    } catch {
      answer = 'servfail';
    }
    if (answer === 'drop') return;
    let reply: Buffer;
    if (answer === 'nxdomain') reply = buildReply(q, 3, []);
    else if (answer === 'servfail') reply = buildReply(q, 2, []);
    else {
      const family = type === 'A' ? 4 : 6;
      const ttl = answer.ttl ?? 60;
      const rrs = answer.addresses.filter((a) => net.isIP(a) === family).map((a) => ({ type: type === 'A' ? TYPE_A : TYPE_AAAA, ttl, data: rdata(a) }));
      reply = buildReply(q, 0, rrs);
    }
    sock.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      sock.off('error', reject);
      resolve();
    });
  });
  const port = sock.address().port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    queries,
    count: (name, type) => (type ? (queries.get(`${name}/${type}`) ?? 0) : (queries.get(`${name}/A`) ?? 0) + (queries.get(`${name}/AAAA`) ?? 0)),
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}
