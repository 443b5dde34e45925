/**
 * The names of request methods, by llhttp's number for them (h1-server.ts), and the start-up check
 * of the node:http internals Turret's HTTP/1.1 server rests on.
 */
import { METHODS } from 'node:http';
import { checkParser, HTTPParser } from '../llhttp.js';
import { checkHeaderLines } from './h1-request.js';

/**
 * Every method llhttp knows (HTTP, WebDAV, RTSP…), to learn node:http's `allMethods` by llhttp's
 * index. PRI is not among them: llhttp stops at an HTTP/2 preface with an error of its own
 * (HPE_PAUSED_H2_UPGRADE), a clientError like any other parse error.
 */
const LLHTTP_METHODS = [...METHODS, 'DESCRIBE', 'ANNOUNCE', 'SETUP', 'PLAY', 'PAUSE', 'TEARDOWN', 'GET_PARAMETER', 'SET_PARAMETER', 'REDIRECT', 'RECORD', 'FLUSH', 'QUERY'];

let methodTable: string[] | null = null;

/**
 * llhttp reports a request's method as a number (its own enum). node:http names it from the
 * binding's `allMethods`, which is reachable only through the deprecated process.binding; the table
 * is built instead by parsing one request per method name llhttp may know, and checked to hold
 * GET, HEAD and CONNECT. A number missing from it is refused as malformed (never guessed).
 */
export function methods(): string[] {
  if (methodTable) return methodTable;
  checkParser();
  const problem = checkHeaderLines();
  if (problem) throw new Error(`Turret's HTTP/1.1 server needs node:http's IncomingMessage as in Node 20-24; this Node (${process.version}) differs: ${problem}`);
  const table: string[] = [];
  const p = new HTTPParser();
  try {
    // RTSP methods parse only with an RTSP version (and are served then, as by node:http).
    for (const name of new Set(LLHTTP_METHODS)) {
      for (const version of ['HTTP/1.1', 'RTSP/1.0']) {
        let index = -1;
        p.initialize(HTTPParser.REQUEST, {}, 8192, HTTPParser.kLenientNone);
        p[HTTPParser.kOnHeadersComplete] = (_ma: number, _mi: number, _h: unknown, m: number): number => {
          index = m;
          return 0;
        };
        const r = p.execute(Buffer.from(`${name} / ${version}\r\nhost: a\r\n\r\n`, 'latin1'));
        if (!(r instanceof Error) && index >= 0) table[index] = name;
      }
    }
  } finally {
    p.close();
  }
  for (const m of ['GET', 'HEAD', 'CONNECT', 'POST']) {
    if (!table.includes(m)) throw new Error(`Turret's HTTP/1.1 server could not learn llhttp's number for ${m} on this Node (${process.version})`);
  }
  methodTable = table;
  return table;
}
