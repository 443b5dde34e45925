/**
 * A parked upstream connection does not keep its process alive (upstream-h1.ts park: its socket
 * is unref'd once it has idled past UNREF_AFTER_MS, not on every park), and a parked connection a
 * request takes is ref'd again while that request runs. A child process uses a pool against an
 * upstream in this process that never closes its connections: the child must end by itself after
 * its last answer, with its connections still parked, and must not end while a request on a
 * reused connection waits for its answer.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';

const poolUrl = new URL('../../src/proxy/upstream-h1-pool.ts', import.meta.url).href;
const endingUrl = new URL('../../src/proxy/ending.ts', import.meta.url).href;

// Two requests at once (two connections), then, once a parked connection's socket is unref'd,
// one more on it: announced on stdout before its answer can come (the upstream answers it only
// after reading that line).
const script = `
  import net from 'node:net';
  const { OriginPool } = await import(${JSON.stringify(poolUrl)});
  const { ExchangeEnding } = await import(${JSON.stringify(endingUrl)});
  const port = Number(process.argv[1]);
  const sockets = [];
  const pool = new OriginPool(() => new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    sockets.push(s);
    s.once('connect', () => resolve(s)).once('error', reject);
  }), 4, { headersMs: 600000, bodyMs: 600000 });
  const send = (path) => new Promise((resolve, reject) => pool.request(
    { method: 'GET', path, headers: [['host', 'up.test']], body: undefined, length: undefined },
    new ExchangeEnding(), null,
    (e, a) => (e || !a ? reject(e) : resolve(a.whole === null ? 'stream' : a.whole.toString('latin1')))));
  process.on('exit', () => process.stdout.write('exit destroyed ' + sockets.map((s) => s.destroyed).join(',') + ' refs ' + sockets.map((s) => s._handle?.hasRef()).join(',') + '\\n'));
  const first = await Promise.all([send('/1'), send('/2')]);
  process.stdout.write('answers ' + first.join(',') + '\\n');
  const refs = () => sockets.map((s) => s._handle.hasRef());
  process.stdout.write('refs after answers ' + refs().join(',') + '\\n');
  // Waits (an event per turn, bounded) for the parked sockets to be unref'd.
  let turns = 0;
  while (refs().some(Boolean) && turns < 1e8) { await new Promise((r) => setImmediate(r)); turns++; }
  process.stdout.write('refs parked ' + refs().join(',') + '\\n');
  const third = send('/3');
  process.stdout.write('sent 3 refs ' + refs().join(',') + '\\n');
  process.stdout.write('answer ' + (await third) + ' dials ' + sockets.length + '\\n');
`;

it('a process whose only handles are parked upstream connections ends by itself; a request on a parked one keeps it alive until answered', { timeout: 120_000 }, async () => {
  const upstream: net.Socket[] = [];
  const paths: string[] = [];
  let held: net.Socket | null = null;
  let announced = false;
  const answer = (s: net.Socket, p: string): void => {
    s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${p.length}\r\n\r\n${p}`);
  };
  const server = net.createServer((s) => {
    upstream.push(s);
    s.on('error', () => undefined);
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const p = /^GET (\S+)/.exec(buf)?.[1] ?? '?';
        buf = buf.slice(end + 4);
        paths.push(p);
        if (p !== '/3') answer(s, p);
        else if (announced) answer(s, p);
        else held = s;
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!announced && out.includes('sent 3')) {
        announced = true;
        if (held !== null) answer(held, '/3');
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(err, '');
    assert.equal(code, 0);
    // Which parked connection /3 takes is the pool's choice: one of the two is ref'd again.
    const taken = out.includes('sent 3 refs true,false') ? 'true,false' : 'false,true';
    // Both connections were still open (parked, unref'd) when the child ended by itself.
    assert.equal(
      out,
      [
        'answers /1,/2',
        'refs after answers true,true',
        'refs parked false,false',
        `sent 3 refs ${taken}`,
        'answer /3 dials 2',
        'exit destroyed false,false refs false,false',
        '',
      ].join('\n'),
    );
    assert.deepEqual([...paths].sort(), ['/1', '/2', '/3']);
  } finally {
    for (const s of upstream) s.destroy();
    server.close();
  }
});
