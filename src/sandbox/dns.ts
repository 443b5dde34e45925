/**
 * The sandbox's stub resolver (RFC 1035 wire format, UDP). Every name has exactly one address,
 * 127.0.0.1, where the run's relay listens on 80 and 443: a client that ignores the proxy
 * variables dials "the host" and lands on the bridge, and Turret decides by SNI or Host — never
 * by the address, which means nothing here. AAAA and every other type get an empty answer
 * (NOERROR, no records), so clients fall back to IPv4 at once; other opcodes get NOTIMP.
 * Nothing is ever forwarded to a real resolver: a query is not a way out (DNS tunnelling).
 */

const TYPE_A = 1;
const CLASS_IN = 1;
const TTL_SECONDS = 5;

/** The answer to one query, or null for a packet that is not a query we can parse (dropped). */
export function answerQuery(q: Buffer): Buffer | null {
  if (q.length < 12 || q.length > 512) return null;
  const flags = q.readUInt16BE(2);
  if (flags & 0x8000) return null; // a response, not a query
  const opcode = (flags >> 11) & 0xf;
  const qdcount = q.readUInt16BE(4);
  const rd = flags & 0x0100;
  const header = (rcode: number, an: number, qd: number): Buffer => {
    const h = Buffer.alloc(12);
    q.copy(h, 0, 0, 2); // id
    h.writeUInt16BE(0x8000 | (opcode << 11) | 0x0400 | rd | 0x0080 | rcode, 2); // QR AA RD RA
    h.writeUInt16BE(qd, 4);
    h.writeUInt16BE(an, 6);
    return h;
  };
  if (opcode !== 0 || qdcount !== 1) return header(4, 0, 0); // NOTIMP / one question only
  // The question: labels up to the root, then type and class. No compression in a question.
  let i = 12;
  for (let labels = 0; ; labels++) {
    if (i >= q.length || labels > 127) return null;
    const len = q[i] ?? 0;
    if (len === 0) {
      i++;
      break;
    }
    if (len > 63) return null;
    i += 1 + len;
  }
  if (i + 4 > q.length) return null;
  const qtype = q.readUInt16BE(i);
  const qclass = q.readUInt16BE(i + 2);
  const question = q.subarray(12, i + 4);
  if (qtype !== TYPE_A || qclass !== CLASS_IN) return Buffer.concat([header(0, 0, 1), question]);
  const rr = Buffer.alloc(16);
  rr.writeUInt16BE(0xc00c, 0); // pointer to the name in the question
  rr.writeUInt16BE(TYPE_A, 2);
  rr.writeUInt16BE(CLASS_IN, 4);
  rr.writeUInt32BE(TTL_SECONDS, 6);
  rr.writeUInt16BE(4, 10);
  rr.set([127, 0, 0, 1], 12);
  return Buffer.concat([header(0, 1, 1), question, rr]);
}
