/**
 * A raw HTTP/1.1 client for the proxy, for spellings that real clients rewrite before sending
 * (curl turns "0x7f.1" into "127.0.0.1"): the request line reaches Turret byte for byte.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Read one response (head + content-length body, or until close) from a stream. */
export function readResponse(sock: net.Socket | tls.TLSSocket, o: { connect?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
  const timeoutMs = o.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`no complete response in ${timeoutMs} ms: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`)), timeoutMs);
    const parse = (final: boolean): RawResponse | null => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return null;
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
      }
      const body = buf.subarray(end + 4);
      const len = headers['content-length'];
      // A 200 to CONNECT has no body: the tunnel starts right after the head.
      if (o.connect && status === 200 && len === undefined) return { status, headers, body: '' };
      if (len !== undefined && body.length >= Number(len)) return { status, headers, body: body.subarray(0, Number(len)).toString('utf8') };
      if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
        const text = dechunk(body);
        if (text !== null) return { status, headers, body: text };
      }
      return final ? { status, headers, body: body.toString('utf8') } : null;
    };
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const r = parse(false);
      if (r) done(null, r);
    };
    const onEnd = (): void => {
      const r = parse(true);
      done(r ? null : new Error(`connection closed without a response: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`), r ?? undefined);
    };
    const done = (err: Error | null, r?: RawResponse): void => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
      sock.off('error', onErr);
      if (err) reject(err);
      else resolve(r as RawResponse);
    };
    const onErr = (e: Error): void => done(e);
    sock.on('data', onData);
    sock.once('end', onEnd);
    sock.once('close', onEnd);
    sock.once('error', onErr);
  });
}

/** The body of a complete chunked message, or null while chunks are still missing. */
function dechunk(buf: Buffer): string | null {
  const parts: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', i);
    if (eol < 0) return null;
    const size = parseInt(buf.subarray(i, eol).toString('latin1'), 16);
    if (Number.isNaN(size)) return null;
    if (size === 0) return Buffer.concat(parts).toString('utf8');
    if (eol + 2 + size + 2 > buf.length) return null;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
}

export function connectProxy(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

export function basicAuth(agent: string, token: string): string {
  return `Basic ${Buffer.from(`${agent}:${token}`).toString('base64')}`;
}

/** Send raw request text to the proxy on a fresh connection and read one response. */
export async function rawRequest(port: number, text: string): Promise<RawResponse> {
  const s = await connectProxy(port);
  try {
    const r = readResponse(s);
    s.write(text);
    return await r;
  } finally {
    s.destroy();
  }
}

/** `CONNECT authority` and the response; the socket stays open for the tunnel when it is 200. */
export async function rawConnect(port: number, authority: string, auth: string): Promise<{ res: RawResponse; socket: net.Socket }> {
  const socket = await connectProxy(port);
  const r = readResponse(socket, { connect: true });
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: ${auth}\r\n\r\n`);
  return { res: await r, socket };
}
