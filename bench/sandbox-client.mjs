// Runs inside or outside `turret run` (plain JS: no build step inside the sandbox). One keep-alive
// HTTPS connection — through HTTPS_PROXY (CONNECT) or, with "direct", dialled by name — then
// N small requests (latency) and one large download (throughput). Prints one JSON line.
import net from 'node:net';
import tls from 'node:tls';
const [mode, host, port, n, bigBytes] = process.argv.slice(2);
function connect() {
  return new Promise((resolve, reject) => {
    if (mode === 'direct') return resolve(tls.connect({ host, port: Number(port), servername: host }));
    const u = new URL(process.env.HTTPS_PROXY);
    const s = net.connect(Number(u.port), u.hostname);
    const auth = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64');
    s.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`);
    let buf = '';
    const onData = (c) => {
      buf += c.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      s.off('data', onData);
      if (!buf.startsWith('HTTP/1.1 200')) return reject(new Error(buf.slice(0, 100)));
      resolve(tls.connect({ socket: s, servername: host }));
    };
    s.on('data', onData).on('error', reject);
  });
}
const t = await connect();
let pending = null;
// Streaming response reader: the head, then Content-Length bytes or chunks up to the last one
// (Turret may re-frame a body as chunked). Bodies are counted, never concatenated.
let head = Buffer.alloc(0);
let left = -1; // body bytes still expected (Content-Length), or -1 while reading a head
let chunked = false;
let tail = '';
const done = () => {
  head = Buffer.alloc(0);
  left = -1;
  chunked = false;
  tail = '';
  const p = pending;
  pending = null;
  p?.();
};
const onBody = (c) => {
  if (chunked) {
    tail = (tail + c.subarray(Math.max(0, c.length - 16)).toString('latin1')).slice(-16);
    if (tail.endsWith('\r\n0\r\n\r\n') || tail === '0\r\n\r\n') done();
    return;
  }
  left -= c.length;
  if (left <= 0) done();
};
t.on('data', (c) => {
  if (left >= 0 || chunked) return onBody(c);
  head = Buffer.concat([head, c]);
  const end = head.indexOf('\r\n\r\n');
  if (end < 0) return;
  const h = head.subarray(0, end).toString('latin1');
  if (!h.startsWith('HTTP/1.1 200')) throw new Error(h.slice(0, 200));
  chunked = /transfer-encoding: *chunked/i.test(h);
  left = chunked ? -1 : Number(/content-length: *(\d+)/i.exec(h)?.[1] ?? 0);
  const rest = head.subarray(end + 4);
  if (!chunked && left === 0) return done();
  if (rest.length > 0) onBody(rest);
});
const get = (path) =>
  new Promise((r) => {
    pending = r;
    t.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
await get('/small');
const lat = [];
for (let i = 0; i < Number(n); i++) {
  const s = process.hrtime.bigint();
  await get('/small');
  lat.push(Number(process.hrtime.bigint() - s) / 1e6);
}
lat.sort((a, b) => a - b);
const s = process.hrtime.bigint();
await get(`/big?${bigBytes}`);
const secs = Number(process.hrtime.bigint() - s) / 1e9;
console.log(JSON.stringify({ p50: lat[Math.floor(lat.length / 2)], p99: lat[Math.floor(lat.length * 0.99)], mbps: Number(bigBytes) / secs / 1e6 }));
t.destroy();
