/**
 * Redirects from the upstream: Turret never follows them (the upstream client has no redirect
 * handling), it relays the 3xx as it came, with `Location` and `Set-Cookie` scrubbed of the
 * secret the upstream reflected (docs/security.md). The upstream sees the one request the client
 * sent and never the redirect's target; one record per exchange; the secret is in no output.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { caseOrEcho, pathOf } from '../helpers/h1-upstream.js';
import { HOST, useH1 } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';
import { assertNoSecrets, turretOutputs } from '../helpers/turret.js';

const SECRET = `fake_${randomBytes(16).toString('hex')}`;

describe('redirects from the upstream are relayed, never followed', () => {
  const h = useH1({ secret: true, env: { TEST_H1_TOKEN: SECRET } });
  let n = 0;

  for (const status of [301, 302, 303, 307, 308]) {
    for (const tls of [false, true]) {
      it(`${status}${tls ? ' inside an intercepted tunnel' : ''}: relayed with Location and Set-Cookie scrubbed, the target never requested`, async () => {
        let port = 0;
        const up = await h.ups.start(
          caseOrEcho(async (c) => {
            await c.send(
              `HTTP/1.1 ${status} Moved\r\nLocation: ${tls ? 'https' : 'http'}://${HOST}:${port}/elsewhere?token=${SECRET}\r\nSet-Cookie: s=${SECRET}; Path=/\r\nContent-Length: 0\r\n\r\n`,
            );
          }),
        );
        port = tls ? up.tlsPort : up.port;
        const p = `/redirect/${++n}/case`;
        const r = tls ? await h.px.sendTls(port, p) : await h.px.send(port, p);
        assert.equal(r.parsed.problem, null, r.raw.toString('latin1'));
        assert.deepEqual(
          r.parsed.responses.map((m) => m.status),
          [status],
          r.raw.toString('latin1'),
        );
        const final = r.final;
        assert.ok(final);
        const location = header(final, 'location');
        assert.match(String(location), /^https?:\/\/up\.turret\.test:\d+\/elsewhere\?token=\[REDACTED/);
        assert.match(String(header(final, 'set-cookie')), /^s=\[REDACTED/);
        assert.ok(!r.raw.toString('latin1').includes(SECRET), 'the secret never reaches the client');
        const rec = await h.px.record(p);
        assert.equal(rec.status, status);
        assert.equal(rec.outcome, 'completed');
        const paths = up.conns.flatMap((c) => c.requests.map(pathOf));
        assert.deepEqual(paths, [p], 'the upstream saw the one request, not the redirect target');
      });
    }
  }

  it('the reflected secret is in no output', () => {
    assertNoSecrets(turretOutputs(h.px.t), { secret: SECRET });
    assert.deepEqual(h.ups.errors(), []);
  });
});
