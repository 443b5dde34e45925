/**
 * Response trailers from a hostile upstream (chunked, to a raw HTTP/1.1 client): an announced
 * trailer reflecting the injected secret is scrubbed, one announced under a name that holds the
 * secret is dropped, one not announced (holding the secret) is dropped, framing and routing names
 * (Transfer-Encoding, Host, Trailer, Content-Type, Content-Encoding) are never relayed as
 * trailers, a Content-Length there is the upstream's protocol error (the response is cut), and a
 * harmless announced trailer is relayed as sent. The secret is a
 * generated fake_… value; every output (the client's bytes, the audit log, Turret's logs) is
 * grepped for it. One record each.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { caseOrEcho } from '../helpers/h1-upstream.js';
import { bodyOf, expectCut, useH1, withClient } from '../helpers/h1-proxy.js';
import { assertNoSecrets, turretOutputs } from '../helpers/turret.js';

const SECRET = `fake_${randomBytes(16).toString('hex')}`;

/** A chunked 200 announcing `announce` (or nothing), with the trailer section `trailers`. */
const chunked = (announce: string | null, trailers: string): string =>
  `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n${announce === null ? '' : `Trailer: ${announce}\r\n`}\r\n5\r\nhello\r\n0\r\n${trailers}\r\n`;

interface Case {
  name: string;
  answer: string;
  /** The trailer fields the client gets, lower-cased names, in order. */
  expect: Array<[string, string]>;
}

const CASES: Case[] = [
  { name: 'a harmless announced trailer is relayed', answer: chunked('X-Checksum', 'X-Checksum: abc123\r\n'), expect: [['x-checksum', 'abc123']] },
  {
    name: 'an announced trailer reflecting the secret is scrubbed',
    answer: chunked('X-Checksum, X-Leak', `X-Checksum: abc123\r\nX-Leak: before ${SECRET} after\r\n`),
    expect: [
      ['x-checksum', 'abc123'],
      ['x-leak', 'before [REDACTED:secret:h1-token] after'],
    ],
  },
  {
    name: 'a trailer whose announced name is the secret is dropped',
    answer: chunked(`X-Checksum, ${SECRET}`, `X-Checksum: abc123\r\n${SECRET}: v\r\n`),
    expect: [['x-checksum', 'abc123']],
  },
  { name: 'a trailer that was not announced is dropped', answer: chunked('X-Checksum', `X-Checksum: abc123\r\nX-Sneak: ${SECRET}\r\n`), expect: [['x-checksum', 'abc123']] },
  { name: 'trailers without any announcement are dropped', answer: chunked(null, `X-Sneak: ${SECRET}\r\nX-Other: 1\r\n`), expect: [] },
  {
    name: 'routing and content names are never relayed as trailers',
    answer: chunked(
      'Host, Trailer, Content-Type, Content-Encoding, X-Ok',
      'Host: evil.example\r\nTrailer: X-Ok\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nX-Ok: 1\r\n',
    ),
    expect: [['x-ok', '1']],
  },
  {
    name: 'a Transfer-Encoding in the trailer section is ignored',
    answer: chunked('Transfer-Encoding, X-Ok', `Transfer-Encoding: chunked\r\nX-Ok: ${SECRET}\r\n`),
    expect: [['x-ok', '[REDACTED:secret:h1-token]']],
  },
];

describe('hostile response trailers', () => {
  const h = useH1({ secret: true, env: { TEST_H1_TOKEN: SECRET } });
  let n = 0;

  for (const k of CASES) {
    it(`${k.name}; no secret reaches the client; one record`, async () => {
      const up = await h.ups.start(caseOrEcho((c) => c.send(k.answer)));
      const p = `/trailers/${++n}/case`;
      const r = await h.px.send(up.port, p);
      const text = r.raw.toString('latin1');
      assert.equal(r.parsed.problem, null, text);
      assert.equal(r.final?.status, 200, text);
      assert.equal(bodyOf(r), 'hello');
      assert.deepEqual(
        r.final!.trailers.map(([name, v]) => [name.toLowerCase(), v]),
        k.expect,
        text,
      );
      assert.ok(!text.includes(SECRET), `the secret reached the client: ${text}`);
      const rec = await h.px.record(p);
      assert.equal(rec.outcome, 'completed');
      await h.px.servesNext(up.port, `/trailers/${n}/next`, p);
    });
  }

  it('a Content-Length in the trailer section, after the client has the head and body: the response is cut, one upstream_protocol_error record', async () => {
    // The trailers come only once the client has the body (an event), so the head is out whatever
    // the proxy buffers: the only honest end left is a cut.
    const w = withClient(async (c, client) => {
      await c.send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Ok\r\n\r\n6\r\nhello\n\r\n');
      await client.seen('hello\n');
      await c.send(`0\r\nContent-Length: 99\r\nX-Ok: ${SECRET}\r\n\r\n`);
    });
    const up = await h.ups.start(w.script);
    const p = `/trailers/${++n}/case`;
    const r = await w.attach(h.px.open(up.port, p)).done;
    expectCut(r, 'hello\n');
    assert.ok(!r.raw.toString('latin1').includes(SECRET));
    const rec = await h.px.record(p);
    assert.equal(rec.code, 'upstream_protocol_error');
    assert.equal(rec.outcome, 'failed');
    await h.px.servesNext(up.port, `/trailers/${n}/next`, p);
  });

  it('no output holds the secret; no upstream script failed', () => {
    assertNoSecrets(turretOutputs(h.px.t), { secret: SECRET });
    assert.deepEqual(h.ups.errors(), []);
  });
});
