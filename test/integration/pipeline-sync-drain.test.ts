/**
 * A request refused synchronously (decide runs without a promise, pipeline.ts) is answered inside
 * the pipeline's own 'request' listener: while draining it must still say Connection: close
 * (drain.ts prepends its listener). Real turret, SIGTERM, a pipelined refusal behind a held request.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basicAuth, connectProxy } from '../helpers/raw-proxy.js';
import { agentToken, startTurret, until, waitForLog, type TurretProc } from '../helpers/turret.js';
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
    // Both reached the upstream; the second's answer waits behind the first, which never comes.
    await until(() => up.received.some((x) => x.url === '/hold-gone') && up.received.some((x) => x.url === '/hold-next'), 'both requests at the upstream');
    s.destroy();
    await bothClientClosed((p) => p.startsWith('/hold-'), ['/hold-gone', '/hold-next']);
  });

  it('the same on the plain proxy port (absolute-form requests): both end client_closed', async () => {
    const auth = basicAuth('a', await agentToken(t, 'a'));
    const s = await connectProxy(t.port);
    s.on('data', () => {});
    const one = (p: string): string => `GET http://echo.turret.test:${plain.port}${p} HTTP/1.1\r\nHost: echo.turret.test:${plain.port}\r\nProxy-Authorization: ${auth}\r\n\r\n`;
    s.write(one('/hold-gone-plain') + one('/hold-next-plain'));
    await until(() => plain.received.length >= 2, 'both requests at the upstream');
    s.destroy();
    await bothClientClosed((p) => p.endsWith('-plain'), ['/hold-gone-plain', '/hold-next-plain']);
  });

  it('a request refused at once while draining is still answered Connection: close', async () => {
    const auth = basicAuth('a', await agentToken(t, 'a'));
    const s = await tunnel(t, auth, 'echo.turret.test', up.port);
    const answers = exchange(s, get('/hold'), 2);
    await until(() => held !== null, 'the upstream holding /hold');
    const mark = t.stderr().length;
    t.proc.kill('SIGTERM');
    await waitForLog(t, /"msg":"stopping: draining connections/, mark);
    // A second request on the busy connection, refused by the rules (decided synchronously), while
    // the first is still under way: the drain wants every response from now on to close.
    s.write(get('/denied?during=drain'));
    await until(() => t.audit().some((x) => String(x.path).startsWith('/denied')), 'the refusal recorded');
    held?.('held');
    const r = await answers;
    s.destroy();
    assert.equal(status(r.responses[0]), 200, r.raw);
    assert.equal(status(r.responses[1]), 403, r.raw);
    assert.equal(errorCode(r.responses[1]), 'policy_denied');
    const conn = r.responses[1]?.headers.find(([k]) => k.toLowerCase() === 'connection')?.[1];
    assert.match(conn ?? '', /close/i, `the refusal during the drain must close the connection: ${r.raw}`);
    assert.equal(t.audit().filter((x) => String(x.path).startsWith('/denied')).length, 1);
  });

  function get(p: string): string {
    return `GET ${p} HTTP/1.1\r\nHost: echo.turret.test:${up.port}\r\n\r\n`;
  }
});
