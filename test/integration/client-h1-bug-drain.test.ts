/**
 * srvpin's bug 3, fixed by srvfix: docs/operations.md (SIGTERM): "responses written during the
 * drain carry `Connection: close`". Inside an intercepted tunnel, the answer to a request already
 * under way when SIGTERM arrived was written with `Connection: keep-alive` (drain.ts marked only
 * requests arriving after the signal). Now the drain marks every response not yet begun
 * (drain.ts `unanswered`), on the inner server (its case is in client-h1-upgrade-drain, "graceful
 * shutdown with intercepted tunnels") and on the proxy port's http.Server (here).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startH1Proxy } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';
import { startH1Upstream } from '../helpers/h1-upstream.js';
import { until } from '../helpers/turret.js';
import { byPath, Gates, HOST, responsesTo } from '../helpers/client-h1.js';

it('SIGTERM with a request under way on the proxy port (http.Server): its answer says Connection: close', async () => {
  const gates = new Gates();
  const up = await startH1Upstream(byPath(gates));
  const px = await startH1Proxy({ args: ['--drain-timeout', '20s'] });
  try {
    const port = up.port;
    /** A keep-alive connection on the proxy port; `done` resolves with every byte once Turret closed it. */
    const conn = (): { s: net.Socket; got: () => string; done: Promise<Buffer> } => {
      const s = net.connect(px.t.port, '127.0.0.1');
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('error', () => undefined);
      const done = new Promise<Buffer>((resolve) => s.once('close', () => resolve(Buffer.concat(chunks))));
      return { s, got: () => Buffer.concat(chunks).toString('latin1'), done };
    };
    const get = (p: string): string => `GET http://${HOST}:${port}${p} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nProxy-Authorization: ${px.auth}\r\n\r\n`;
    const idle = conn();
    idle.s.write(get('/cl/drp-idle'));
    await until(() => idle.got().endsWith('own:/cl/drp-idle'), 'the idle connection answered');
    const busy = conn();
    busy.s.write(get('/slow/drp'));
    await until(() => gates.holds('/slow/drp'), 'the request at the upstream');
    const exited = new Promise<number | null>((resolve) => px.t.proc.once('exit', (code) => resolve(code)));
    px.t.proc.kill('SIGTERM');
    // The drain has started once it closed the idle keep-alive connection.
    await idle.done;
    gates.release('/slow/drp');
    const r = responsesTo(await busy.done, ['GET'], true);
    assert.equal(r.responses[0]?.status, 200);
    assert.deepEqual(header(r.responses[0]!, 'connection'), ['close']);
    assert.equal(await exited, 0);
  } finally {
    await px.stop();
    await up.close();
  }
});
