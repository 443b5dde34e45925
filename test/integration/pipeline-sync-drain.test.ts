/**
 * Pipelined requests and the drain: a client leaving while a request waits its turn behind a
 * pending one (both end client_closed, one record each, the waiting one never forwarded), and a
 * request pipelined during the drain behind a held one (the held answer says Connection: close,
 * the one behind it is bytes after a close: connection.ts waitTurn). Real turret, SIGTERM.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basicAuth, connectProxy } from '../helpers/raw-proxy.js';
import { agentToken, startTurret, until, waitForLog, type TurretProc } from '../helpers/turret.js';
import { parseResponses } from '../helpers/http-wire.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { ENV, errorCode, exchange, rules, status, tunnel } from '../helpers/pipeline-sync.js';

describe('queued responses and synchronous refusals during a drain', () => {
  let t: TurretProc;
  let up: Upstream;
  let plain: Upstream;
  let held: ((body: string) => void) | null = null;

  before(async () => {
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      const send = (body: string): void => void res.writeHead(200, { 'content-length': Buffer.byteLength(body) }).end(body);
      if (req.url === '/hold') held = send;
      else if (!req.url?.startsWith('/hold-gone')) send('ok');
      // /hold-gone… is never answered: the client leaves first.
    };
    up = await startUpstream({ handler });
    plain = await startUpstream({ handler, tls: false });
    t = await startTurret({ rules: { 'r.yaml': rules(false) }, env: ENV });
  });

  after(async () => {
    await t?.stop();
    await up?.close();
    await plain?.close();
  });

  /** Waits for the two exchanges whose paths `match` and checks each ended client_closed, one record each. */
  const bothClientClosed = async (match: (path: string) => boolean, paths: [string, string]): Promise<void> => {
    const recs = (): Array<Record<string, unknown>> => t.audit().filter((x) => x.event === 'request' && match(String(x.path)));
    await until(
      () => recs().length >= 2,
      () => JSON.stringify(t.audit().slice(-3)),
    );
    assert.deepEqual(
      recs()
        .map((x) => [x.path, x.code])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      paths.map((p) => [p, 'client_closed']),
    );
  };

  it('a client leaving with a response queued behind a pending one: both exchanges end client_closed, one record each', async () => {
    const auth = basicAuth('a', await agentToken(t, 'a'));
    const s = await tunnel(t, auth, 'echo.turret.test', up.port);
    s.on('data', () => {});
    s.write(get('/hold-gone') + get('/hold-next'));
    // The first reached the upstream; the second, parsed from the same write, waits its turn behind
    // it (connection.ts waitTurn), which never comes.
    await until(() => up.received.some((x) => x.url === '/hold-gone'), 'the first request at the upstream');
    s.destroy();
    await bothClientClosed((p) => p.startsWith('/hold-'), ['/hold-gone', '/hold-next']);
    assert.deepEqual(
      up.received.filter((x) => x.url === '/hold-next'),
      [],
      'the request that waited its turn never reached the upstream',
    );
  });

  it('the same on the plain proxy port (absolute-form requests): both end client_closed', async () => {
    const auth = basicAuth('a', await agentToken(t, 'a'));
    const s = await connectProxy(t.port);
    s.on('data', () => {});
    const one = (p: string): string => `GET http://echo.turret.test:${plain.port}${p} HTTP/1.1\r\nHost: echo.turret.test:${plain.port}\r\nProxy-Authorization: ${auth}\r\n\r\n`;
    s.write(one('/hold-gone-plain') + one('/hold-next-plain'));
    await until(() => plain.received.some((x) => x.url === '/hold-gone-plain'), 'the first request at the upstream');
    s.destroy();
    await bothClientClosed((p) => p.endsWith('-plain'), ['/hold-gone-plain', '/hold-next-plain']);
    assert.deepEqual(
      plain.received.filter((x) => x.url === '/hold-next-plain'),
      [],
    );
  });

  it('a request pipelined during the drain behind a held one: the held answer says Connection: close, what follows it is neither answered nor recorded', async () => {
    const auth = basicAuth('a', await agentToken(t, 'a'));
    const s = await tunnel(t, auth, 'echo.turret.test', up.port);
    const all: Buffer[] = [];
    s.on('data', (d: Buffer) => all.push(d));
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    const answers = exchange(s, get('/hold'), 1);
    await until(() => held !== null, 'the upstream holding /hold');
    const mark = t.stderr().length;
    t.proc.kill('SIGTERM');
    await waitForLog(t, /"msg":"stopping: draining connections/, mark);
    // A second request on the busy connection (one the rules refuse at once), while the first is
    // under way: it waits its turn behind /hold (connection.ts waitTurn), whose response the drain
    // marked Connection: close, so it is bytes after a close (before srvfix it was refused at once,
    // and this test checked that refusal said Connection: close).
    s.write(get('/denied?during=drain'));
    held?.('held');
    const r = await answers;
    await closed;
    assert.equal(parseResponses(Buffer.concat(all), { closed: true }).responses.length, 1, 'nothing answered after the close');
    assert.equal(status(r.responses[0]), 200, r.raw);
    const conn = r.responses[0]?.headers.find(([k]) => k.toLowerCase() === 'connection')?.[1];
    assert.match(conn ?? '', /close/i, `the answer written during the drain closes the connection: ${r.raw}`);
    await until(() => t.audit().some((x) => x.path === '/hold'), 'the held exchange recorded');
    assert.deepEqual(
      t.audit().filter((x) => String(x.path).startsWith('/denied')),
      [],
    );
  });

  function get(p: string): string {
    return `GET ${p} HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\n\r\n`;
  }
});
