/**
 * The reader of Turret's log goes away (attack review of what can end the process): a pipe
 * whose reader exited (`turret start 2>&1 | tee …` with tee gone, a log collector restarting).
 * The next log line's EPIPE was an 'error' event on stderr that nobody listened for, an uncaught
 * exception that ended the proxy. It keeps serving now; the audit log stays the record.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { cleanEnv, MAIN, makeDirs, until } from '../helpers/turret.js';
import { readResponse } from '../helpers/raw-proxy.js';
import { LOOPBACK } from '../helpers/rules.js';

it('stderr closed by its reader: the next log line does not end the proxy; it answers, audits, and drains on SIGTERM', async () => {
  const { dir, rulesDir, caDir } = makeDirs({
    'r.yaml': {
      agents: [{ name: 'a', sources: ['127.0.0.1/32'] }],
      rules: [{ name: 'tls', methods: ['read'], hosts: ['tls.turret.test:443'], unsafe_addresses: LOOPBACK }],
      local: ['tls.turret.test'],
    },
  });
  const auditPath = path.join(dir, 'audit.jsonl');
  const audit = (): Array<Record<string, unknown>> =>
    existsSync(auditPath)
      ? readFileSync(auditPath, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>)
      : [];
  const p = spawn(process.execPath, [MAIN, 'start', '--rules', rulesDir, '--ca', caDir, '--listen', '127.0.0.1:0', '--audit', auditPath, '--admin', 'off'], {
    cwd: dir,
    env: cleanEnv(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    let err = '';
    p.stderr.setEncoding('utf8');
    p.stderr.on('data', (c: string) => (err += c));
    await until(
      () => /"msg":"turret started"/.test(err),
      () => `turret to start: ${err}`,
    );
    const port = Number(/"listen":"[^"]*:(\d+)"/.exec(err)?.[1]);
    p.stderr.destroy(); // the reader goes away

    // A tunnel whose client sends plain text: the handshake fails and is logged (info) on close.
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(s, 'connect');
    s.write('CONNECT tls.turret.test:443 HTTP/1.1\r\nHost: tls.turret.test:443\r\n\r\n');
    assert.equal((await readResponse(s, { connect: true })).status, 200);
    s.write('GET / HTTP/1.1\r\nHost: tls.turret.test\r\n\r\n');
    await once(s, 'close');
    await until(
      () => audit().some((r) => r.event === 'tunnel_close'),
      () => `the tunnel_close record (exit ${p.exitCode})`,
    );
    // Still serving after the line that hit the closed pipe.
    const s2 = net.connect(port, '127.0.0.1');
    s2.on('error', () => undefined);
    await once(s2, 'connect');
    s2.write('GET http://elsewhere.turret.test/ HTTP/1.1\r\nHost: elsewhere.turret.test\r\nConnection: close\r\n\r\n');
    const r = await readResponse(s2);
    s2.destroy();
    assert.equal(r.headers['x-turret-error'], 'policy_denied');
    await until(() => audit().some((x) => x.event === 'request' && x.host === 'elsewhere.turret.test'), 'the refused request’s record');
    assert.equal(p.exitCode, null, 'the proxy is still running');
    const exited = once(p, 'exit');
    p.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
  } finally {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
});
