/**
 * The bridge, outside half: `turret run` accepts on the sockets inside.ts bound in the run's
 * network namespace and carries each connection to Turret's proxy port.
 *
 * - The proxy port: bytes both ways, unchanged. The client authenticates with the credential in
 *   its HTTPS_PROXY, exactly as outside.
 * - Ports 80 and 443: the connection is announced to Turret as
 *   `CONNECT transparent.turret.invalid:PORT` with this run's agent credential (proxy/bridge.ts),
 *   then carried unchanged; Turret decides by SNI or Host like its transparent listener does.
 *   The CONNECT head is sent without waiting, so a new connection costs no extra round trip.
 * - UDP 53: answered here (dns.ts); nothing is forwarded.
 *
 * Nothing else in the namespace leads anywhere: it has no interface but loopback.
 */
import type dgram from 'node:dgram';
import net from 'node:net';
import { answerQuery } from './dns.js';

export interface RelayTarget {
  /** Turret's proxy listener, as the host sees it. */
  host: string;
  port: number;
  agent: string;
  token: string;
}

export interface RelayHandles {
  proxy: net.Server;
  http: net.Server;
  https: net.Server;
  dns: dgram.Socket;
}

export interface Relay {
  close(): void;
}

const MAX_RESPONSE_HEAD = 16 * 1024;

export function startRelay(h: RelayHandles, t: RelayTarget): Relay {
  const open = new Set<net.Socket>();
  const track = (s: net.Socket): net.Socket => {
    open.add(s);
    s.once('close', () => open.delete(s));
    s.on('error', () => s.destroy());
    s.setNoDelay(true);
    return s;
  };
  const dial = (client: net.Socket): net.Socket => {
    const up = track(net.connect({ host: t.host, port: t.port }));
    client.once('close', () => up.destroy());
    up.once('close', () => client.destroy());
    return up;
  };
  h.proxy.on('connection', (c: net.Socket) => {
    track(c);
    const up = dial(c);
    c.pipe(up);
    up.pipe(c);
  });
  const credential = Buffer.from(`${t.agent}:${t.token}`, 'utf8').toString('base64');
  const web = (port: 80 | 443) => (c: net.Socket) => {
    track(c);
    const up = dial(c);
    const authority = `transparent.turret.invalid:${port}`;
    up.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: Basic ${credential}\r\n\r\n`);
    c.pipe(up);
    // Turret's answer to the CONNECT is for us, not the client: strip a 200's head, pass a
    // refusal on to a plain-HTTP client (it is an HTTP response it can read), cut a TLS one.
    let head: Buffer = Buffer.alloc(0);
    const onHead = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_RESPONSE_HEAD) c.destroy();
        return;
      }
      up.off('data', onHead);
      if (/^HTTP\/1\.[01] 200 /.test(head.subarray(0, 16).toString('latin1'))) {
        const rest = head.subarray(end + 4);
        if (rest.length > 0) c.write(rest);
      } else if (port === 80) {
        c.write(head);
      } else {
        c.destroy();
        return;
      }
      up.pipe(c);
    };
    up.on('data', onHead);
  };
  h.http.on('connection', web(80));
  h.https.on('connection', web(443));
  h.dns.on('message', (msg, rinfo) => {
    const a = answerQuery(msg);
    if (a) h.dns.send(a, rinfo.port, rinfo.address);
  });
  h.dns.on('error', () => {});
  return {
    close: () => {
      for (const s of [h.proxy, h.http, h.https]) s.close();
      h.dns.close();
      for (const s of open) s.destroy();
    },
  };
}
