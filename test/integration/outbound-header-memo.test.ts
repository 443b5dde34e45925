/**
 * The outbound head check remembers header lines it found clean by name, then value
 * (proxy/clean-strings.ts knownCleanPair): one keep-alive connection inside one intercepted
 * tunnel sends a header clean, then the same name with a secret in every form the check knows
 * (raw, upper-case, every byte percent-escaped, base64, base64url, inside Basic), then clean
 * again, under the name in odd case too; a value clean before a reload is found once the reload
 * makes it a secret. Each secret-bearing request is refused with exactly one record, the upstream
 * never sees a secret form, and no output holds one.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { agentToken, assertNoSecrets, startTurret, turretOutputs, waitForAudit, waitForLog, type TurretProc } from '../helpers/turret.js';
import { basic } from '../helpers/ops.js';
import { LOOPBACK, writeRules, type RuleFile } from '../helpers/rules.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { keepAliveTunnel } from '../helpers/tunnel-client.js';

const SECRET = `fake_${randomBytes(16).toString('hex')}`;
const LATER = `fake_${randomBytes(16).toString('hex')}`;

const rules = (later: boolean): RuleFile => ({
  agents: ['a'],
  secrets: [
    { name: 'api', from: { env: 'T_API' }, hosts: ['other.turret.test:*'] },
    ...(later ? [{ name: 'later', from: { env: 'T_LATER' }, hosts: ['other.turret.test:*'] }] : []),
  ],
  rules: [{ name: 'echo', methods: ['read'], hosts: ['echo.turret.test:*'], unsafe_addresses: LOOPBACK }],
  local: ['echo.turret.test'],
});

const forms = (s: string): Record<string, string> => ({
  raw: s,
  upper: s.toUpperCase(),
  percent: [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join(''),
  base64: Buffer.from(s).toString('base64'),
  base64url: Buffer.from(`>>${s}??`).toString('base64url'),
  basic: `Basic ${Buffer.from(`user:${s}`).toString('base64')}`,
});

describe('the outbound check remembers clean header lines by name and value', () => {
  let t: TurretProc;
  let up: Upstream;
  let auth: string;

  before(async () => {
    up = await startUpstream();
    t = await startTurret({ rules: { 'main.yaml': rules(false) }, env: { T_API: SECRET, T_LATER: LATER } });
    auth = basic('a', await agentToken(t, 'a'));
  });

  after(async () => {
    await t?.stop();
    await up?.close();
  });

  it('a name seen clean is checked again for every new value, in any case, and after a reload', async () => {
    const ca = readFileSync(path.join(t.caDir, 'ca.crt'));
    const tunnel = keepAliveTunnel({ proxyPort: t.port, auth, host: 'echo.turret.test', port: up.port, ca });
    const seen: Array<[string, number]> = [];
    const get = async (p: string, headers: Record<string, string>): Promise<void> => {
      seen.push([p, (await tunnel.get(p, headers)).status]);
    };
    const expected: Array<[string, number]> = [];
    let n = 0;
    for (const [form, value] of Object.entries(forms(SECRET))) {
      for (const name of ['X-Note', 'x-note', 'X-NOTE', 'Authorization']) {
        // Clean, then the secret under the same name, then the same clean line again.
        for (const [v, status] of [
          ['clean-1', 200],
          [value, 403],
          ['clean-1', 200],
          [value, 403],
        ] as const) {
          const p = `/h/${form}/${name}/${++n}`;
          await get(p, { [name]: v });
          expected.push([p, status]);
        }
      }
    }
    // A value clean now, a secret after the reload: the memo of the old detector does not carry over.
    for (const [form, value] of Object.entries(forms(LATER))) {
      const p = `/before/${form}`;
      await get(p, { 'X-Later': value });
      expected.push([p, 200]);
    }
    const mark = t.stderr().length;
    writeRules(t.rulesDir, { 'main.yaml': rules(true) });
    await waitForLog(t, /"msg":"rules reloaded/, mark);
    for (const [form, value] of Object.entries(forms(LATER))) {
      const p = `/after/${form}`;
      await get(p, { 'X-Later': value });
      expected.push([p, 403]);
    }
    tunnel.close();
    assert.deepEqual(seen, expected);
    assert.equal(tunnel.tunnels(), 1);

    // Exactly one record per request, each refusal with its cause.
    const last = expected[expected.length - 1]?.[0];
    await waitForAudit(t, (r) => r.path === last);
    for (const [p, status] of expected) {
      const recs = t.audit().filter((r) => r.path === p);
      assert.equal(recs.length, 1, p);
      assert.equal(recs[0]?.status, status, p);
      if (status === 403) assert.equal(recs[0]?.code, 'secret_in_request', p);
    }
    // The upstream got every clean request and no secret in any form.
    const upstream = JSON.stringify(up.received.filter((r) => !r.url.startsWith('/before/')));
    assertNoSecrets([['upstream', upstream], ...turretOutputs(t)], { ...forms(SECRET), ...Object.fromEntries(Object.entries(forms(LATER)).map(([k, v]) => [`later ${k}`, v])) });
    assert.equal(up.received.length, expected.filter(([, s]) => s === 200).length);
  });
});
