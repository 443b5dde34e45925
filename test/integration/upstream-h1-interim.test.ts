/**
 * Interim (1xx) responses from the upstream to a plain GET: 100, 102, 103 with header fields
 * (one of them reflecting the injected secret), several in a row, a 1xx carrying a body-ish
 * payload, a 101 nobody asked for, a 1xx and then a reset. Interim responses are consumed by the
 * proxy and never relayed; the final response arrives whole (RFC 9110 §15.2: a client MUST be able
 * to parse 1xx responses it did not expect, 100 included), or a 502 with the cause when the upstream
 * broke the protocol (a 101 to a request without Upgrade, §15.2.2, is the upstream's protocol
 * error, not a close). Each exchange has one record, the secret is in no output, and the proxy
 * serves the next request of the same origin. (The 100 and 101 cases failed with undici, which
 * answered a 100 to a GET with a 502 and recorded an unasked 101 as upstream_closed.)
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { caseOrEcho, ok } from '../helpers/h1-upstream.js';
import { bodyOf, expectRefused, useH1 } from '../helpers/h1-proxy.js';
import { header } from '../helpers/http-wire.js';
import { assertNoSecrets, turretOutputs } from '../helpers/turret.js';

const SECRET = `fake_${randomBytes(16).toString('hex')}`;

interface Case {
  name: string;
  /** Bytes before the final answer. */
  interim: string;
  /** The final answer (none: the connection is reset after the interim bytes). */
  final: string | null;
  /** Expected at the client: the final status, its body, and the record's code (none: completed). */
  status: number;
  body: string;
  code?: string;
}

const CASES: Case[] = [
  { name: '100 Continue to a GET', interim: 'HTTP/1.1 100 Continue\r\n\r\n', final: ok('final-100'), status: 200, body: 'final-100' },
  {
    name: 'four interim responses in a row, a 100 first',
    interim: `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nX-Hint: ${SECRET}\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n`,
    final: ok('final-many'),
    status: 200,
    body: 'final-many',
  },
  {
    name: 'a 101 Switching Protocols to a GET that asked for no upgrade',
    interim: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    final: ok('final-101'),
    status: 502,
    body: '',
    code: 'upstream_protocol_error',
  },
  { name: '102 Processing', interim: 'HTTP/1.1 102 Processing\r\n\r\n', final: ok('final-102'), status: 200, body: 'final-102' },
  {
    name: '103 Early Hints with fields, one reflecting the secret',
    interim: `HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nX-Hint: ${SECRET}\r\n\r\n`,
    final: ok('final-103'),
    status: 200,
    body: 'final-103',
  },
  {
    name: 'three interim responses in a row',
    interim: `HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload\r\n\r\nHTTP/1.1 103 Early Hints\r\nX-Hint: ${SECRET}\r\n\r\n`,
    final: ok('final-many'),
    status: 200,
    body: 'final-many',
  },
  {
    name: 'a 100 with a Content-Length and a payload before the final response',
    interim: 'HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nhello',
    final: ok('final-body'),
    status: 502,
    body: '',
    code: 'upstream_protocol_error',
  },
  { name: 'a 103 and then a reset', interim: 'HTTP/1.1 103 Early Hints\r\nLink: </b.css>; rel=preload\r\n\r\n', final: null, status: 502, body: '', code: 'upstream_closed' },
];

describe('interim responses from the upstream', () => {
  const h = useH1({ secret: true, env: { TEST_H1_TOKEN: SECRET } });
  let n = 0;

  for (const k of CASES) {
    it(`${k.name}: ${k.status}${k.code ? ` ${k.code}` : ''} at the client, no interim relayed, one record, the next request served`, async () => {
      const up = await h.ups.start(
        caseOrEcho(async (c) => {
          await c.send(k.interim);
          if (k.final === null) return c.reset();
          await c.send(k.final);
        }),
      );
      const p = `/interim/${++n}/case`;
      const r = await h.px.send(up.port, p);
      assert.equal(r.parsed.problem, null, r.raw.toString('latin1'));
      assert.deepEqual(
        r.parsed.responses.map((m) => m.status),
        [k.status],
        `only the final response reaches the client: ${r.raw.toString('latin1')}`,
      );
      if (k.code) await expectRefused(h.px, r, p, k.code, k.status);
      else {
        assert.equal(bodyOf(r), k.body);
        const rec = await h.px.record(p);
        assert.equal(rec.status, k.status);
        assert.equal(rec.outcome, 'completed');
      }
      await h.px.servesNext(up.port, `/interim/${n}/next`, p);
      assert.ok(!r.raw.toString('latin1').includes(SECRET), 'the secret never reaches the client');
    });
  }

  it('the secret reflected in interim fields is in no output', () => {
    assertNoSecrets(turretOutputs(h.px.t), { secret: SECRET });
    assert.deepEqual(h.ups.errors(), []);
  });
});
