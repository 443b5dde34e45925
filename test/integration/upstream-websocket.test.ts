/**
 * WebSocket against a hostile upstream (issue #10 item 4), through the real proxy over an
 * intercepted TLS tunnel, with a raw client and a raw upstream (test/helpers/ws-wire.ts, not
 * Turret's codec). The upstream echoes the injected secret in every place a frame can carry it —
 * TEXT, BINARY, a text message fragmented inside the secret with a PING between, PING and PONG
 * payloads, the CLOSE reason — and the client must see the handle or nothing, never the secret
 * raw, in base64 or percent-encoded. Client → server: a handle in a TEXT message of a secret that
 * opts in (`body: true`) is injected; in a BINARY message, a control frame, a text message of a
 * secret that does not opt in, or toward a host it is not bound to, the session is closed with
 * 1008 and the record carries the code. permessage-deflate is stripped from the offer and a 101
 * that negotiates it anyway is refused; refused handshakes are relayed like any response.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { agentToken, startTurret, waitForAudit, type TurretProc } from '../helpers/turret.js';
import { FIXTURES } from '../helpers/upstream.js';
import { acceptKey, frame, frames, messages } from '../helpers/ws-wire.js';
import { LOOPBACK, type RuleFile } from '../helpers/rules.js';

const SECRET = `fake_ws/${randomBytes(14).toString('hex')}+z`;
const OTHER = `fake_other_${randomBytes(14).toString('hex')}`;
const FORMS = (s: string): string[] => [s, Buffer.from(s).toString('base64'), Buffer.from(s).toString('base64url'), encodeURIComponent(s), encodeURIComponent(s).toLowerCase()];
const OP = { cont: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };

function rules(): RuleFile {
  return {
    agents: ['a'],
    secrets: [
      { name: 'chat', from: { env: 'T_CHAT' }, hosts: ['ws.turret.test:*'], body: true },
      { name: 'other', from: { env: 'T_OTHER' }, hosts: ['ws.turret.test:*', 'plain.turret.test:*'] },
    ],
    rules: [{ name: 'ws', methods: ['read', 'websocket'], hosts: ['ws.turret.test:*', 'plain.turret.test:*'], unsafe_addresses: LOOPBACK }],
    local: ['ws.turret.test', 'plain.turret.test'],
  };
}

interface UpSession {
  path: string;
  headers: string;
  /** Data messages the upstream received (fragments joined). */
  received: Buffer[];
}

/** The hostile upstream: answers by path, echoes every received message in every frame type. */
async function startWsUpstream(): Promise<{ port: number; sessions: UpSession[]; close: () => void }> {
  const sessions: UpSession[] = [];
  const srv = tls.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, (s) => {
    s.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let session: UpSession | null = null;
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!session) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        session = { path: head.split(' ')[1] ?? '', headers: head, received: [] };
        sessions.push(session);
        const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(head)?.[1] ?? '';
        const ok = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n`;
        const echoed = /\r\nauthorization: *([^\r]+)/i.exec(head)?.[1] ?? '';
        switch (session.path) {
          case '/deflate':
            return void s.end(`${ok}Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n`);
          case '/te-gzip':
            return void s.end(Buffer.concat([Buffer.from('HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: gzip\r\n\r\n'), zlib.gzipSync(`auth=${echoed}`)]));
          case '/zstd':
            return void s.end(Buffer.concat([Buffer.from('HTTP/1.1 403 Forbidden\r\nContent-Encoding: zstd\r\nConnection: close\r\n\r\n'), zlib.gzipSync(`auth=${echoed}`)]));
          case '/length':
            return void s.end(`HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\nX-Echo: ${echoed}\r\n\r\nhelloGET /smuggled HTTP/1.1\r\n\r\n`);
          default:
            s.write(`${ok}X-Echo: ${echoed}\r\n\r\n`);
        }
      }
      const got = frames(buf);
      buf = Buffer.from(got.rest);
      for (const m of messages(got.frames)) {
        if (m.opcode === OP.close) return void s.end(frame(OP.close, Buffer.concat([Buffer.from([0x03, 0xe8]), m.payload.subarray(2)])));
        if (m.opcode >= 8) continue;
        session.received.push(m.payload);
        const text = m.payload.toString('latin1');
        const secret = text.replace(/^say /, '');
        const cut = Math.floor(secret.length / 2);
        s.write(
          Buffer.concat([
            frame(OP.text, m.payload),
            frame(OP.binary, m.payload),
            // Fragmented inside the secret, a ping between the fragments.
            frame(OP.text, `frag ${secret.slice(0, cut)}`, { fin: false }),
            frame(OP.ping, secret),
            frame(OP.cont, `${secret.slice(cut)} end`),
            frame(OP.pong, Buffer.from(secret).toString('base64')),
            frame(OP.binary, encodeURIComponent(secret)),
          ]),
        );
        // The close reason echoes it too; the session ends.
        s.end(frame(OP.close, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from(secret.slice(0, 100))])));
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { port: (srv.address() as net.AddressInfo).port, sessions, close: () => srv.close() };
}

describe('WebSocket against a hostile upstream', () => {
  let t: TurretProc;
  let up: Awaited<ReturnType<typeof startWsUpstream>>;
  let cred = '';
  const seen: Buffer[] = [];

  before(async () => {
    up = await startWsUpstream();
    t = await startTurret({ rules: { 'r.yaml': rules() }, env: { T_CHAT: SECRET, T_OTHER: OTHER }, args: ['--admin', 'off'] });
    cred = `a:${await agentToken(t, 'a')}`;
  });

  after(async () => {
    await t?.stop();
    up?.close();
    const all = Buffer.concat([...seen, Buffer.from(t.stdout() + t.stderr() + t.auditText())]).toString('latin1');
    for (const f of [...FORMS(SECRET), ...FORMS(OTHER)]) assert.ok(!all.includes(f), 'no output the agent or operator sees holds a secret');
  });

  const issue = async (secret: string): Promise<string> => (await t.cli(['handle', 'issue', '--agent', 'a', '--secret', secret, '--ttl', '1h'])).stdout.trim();

  /** CONNECT, TLS, the handshake (offering permessage-deflate), then `send` after a 101; all bytes until close. */
  const session = (host: string, p: string, send: Buffer[], auth = ''): Promise<{ head: string; frames: ReturnType<typeof frames>['frames']; raw: Buffer }> =>
    new Promise((resolve, reject) => {
      const sock = net.connect(t.port, '127.0.0.1');
      sock.write(`CONNECT ${host}:${up.port} HTTP/1.1\r\nHost: ${host}:${up.port}\r\nProxy-Authorization: Basic ${Buffer.from(cred).toString('base64')}\r\n\r\n`);
      let head = '';
      const onData = (c: Buffer): void => {
        head += c.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        sock.off('data', onData);
        if (!head.startsWith('HTTP/1.1 200')) return reject(new Error(head));
        const s = tls.connect({ socket: sock, servername: host, ca: readFileSync(path.join(t.caDir, 'ca.crt')) });
        let out = Buffer.alloc(0);
        let sent = false;
        const timer = setTimeout(() => s.destroy(), 10_000);
        s.on('secureConnect', () =>
          s.write(
            `GET ${p} HTTP/1.1\r\nHost: ${host}:${up.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
              `Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n${auth ? `Authorization: Bearer ${auth}\r\n` : ''}\r\n`,
          ),
        );
        s.on('data', (d: Buffer) => {
          out = Buffer.concat([out, d]);
          if (!sent && out.includes('\r\n\r\n') && out.toString('latin1').startsWith('HTTP/1.1 101')) {
            sent = true;
            for (const f of send) s.write(f);
          }
        });
        s.on('error', () => undefined);
        s.on('close', () => {
          clearTimeout(timer);
          seen.push(out);
          const end = out.indexOf('\r\n\r\n');
          const h = out.subarray(0, end < 0 ? out.length : end).toString('latin1');
          resolve({ head: h, frames: end < 0 ? [] : frames(out.subarray(end + 4)).frames, raw: out });
        });
      };
      sock.on('data', onData);
      sock.on('error', reject);
    });

  const recordFor = async (p: string): Promise<Record<string, unknown>> => {
    const rec = await waitForAudit(t, (r) => r.event === 'request' && r.path === p);
    assert.ok(rec, `a record for ${p}`);
    assert.equal(t.audit().filter((r) => r.event === 'request' && r.path === p).length, 1, `exactly one record for ${p}`);
    return rec;
  };

  it('every echo of the injected secret — text, binary, fragments, ping, pong, close reason — reaches the client as the handle or not at all', async () => {
    const h = await issue('chat');
    // The handle split across two fragments of one text message: injected all the same.
    const msg = `say ${h}`;
    const r = await session('ws.turret.test', '/echo', [frame(OP.text, msg.slice(0, 20), { fin: false, mask: true }), frame(OP.cont, msg.slice(20), { mask: true })]);
    assert.match(r.head, /^HTTP\/1\.1 101/);
    const upS = up.sessions.find((s) => s.path === '/echo');
    assert.equal(upS?.received[0]?.toString(), `say ${SECRET}`, 'the real secret went upstream inside the text message');
    assert.doesNotMatch(upS?.headers ?? '', /sec-websocket-extensions/i, 'permessage-deflate was not offered upstream');
    const ms = messages(r.frames);
    const text = ms.filter((m) => m.opcode === OP.text).map((m) => m.payload.toString());
    const bin = ms.filter((m) => m.opcode === OP.binary).map((m) => m.payload.toString());
    assert.deepEqual(text, [`say ${h}`, `frag ${h} end`], 'text echoes, one fragmented inside the secret, came back as the handle');
    assert.deepEqual(bin, [`say ${h}`, h], 'binary echoes (raw and percent-encoded) came back as the handle');
    assert.ok(ms.some((m) => m.opcode === OP.ping) && ms.some((m) => m.opcode === OP.pong), 'control frames relayed');
    assert.ok(
      ms.some((m) => m.opcode === OP.close),
      'the close frame relayed',
    );
    for (const f of FORMS(SECRET)) assert.ok(!r.raw.toString('latin1').includes(f), 'no form of the secret in any frame');
    const rec = await recordFor('/echo');
    assert.equal(rec.status, 101);
    assert.deepEqual(rec.secrets, ['chat']);
    assert.ok(Number(rec.redactions) >= 5, `redactions counted (${String(rec.redactions)})`);
  });

  for (const c of [
    {
      name: 'a handle in a binary message',
      host: 'ws.turret.test',
      p: '/bin',
      secret: 'chat',
      f: (h: string) => frame(OP.binary, `x ${h}`, { mask: true }),
      code: 'handle_location_unsupported',
    },
    { name: 'a handle in a ping', host: 'ws.turret.test', p: '/ping', secret: 'chat', f: (h: string) => frame(OP.ping, h.slice(0, 125), { mask: true }), code: 'handle_invalid' },
    {
      name: 'a text handle of a secret without body: true',
      host: 'ws.turret.test',
      p: '/other',
      secret: 'other',
      f: (h: string) => frame(OP.text, `x ${h}`, { mask: true }),
      code: 'handle_location_unsupported',
    },
    {
      name: 'a base64-encoded handle in a text message',
      host: 'ws.turret.test',
      p: '/b64',
      secret: 'chat',
      f: (h: string) => frame(OP.text, Buffer.from(h).toString('base64'), { mask: true }),
      code: 'handle_location_unsupported',
    },
    {
      name: 'a text handle toward a host the secret is not bound to',
      host: 'plain.turret.test',
      p: '/unbound',
      secret: 'chat',
      f: (h: string) => frame(OP.text, `x ${h}`, { mask: true }),
      code: 'handle_host_not_bound',
    },
  ]) {
    it(`${c.name}: the session closes with 1008 and the record carries ${c.code}; nothing reaches the upstream`, async () => {
      const h = await issue(c.secret);
      const r = await session(c.host, c.p, [c.f(h)]);
      assert.match(r.head, /^HTTP\/1\.1 101/);
      const close = r.frames.find((f) => f.opcode === OP.close);
      assert.ok(close, 'a close frame');
      assert.equal(close.payload.readUInt16BE(0), 1008);
      assert.equal(close.payload.subarray(2).toString(), `turret: ${c.code}`);
      const upS = up.sessions.find((s) => s.path === c.p);
      assert.deepEqual(upS?.received ?? [], [], 'no message reached the upstream');
      const rec = await recordFor(c.p);
      assert.equal(rec.code, c.code);
    });
  }

  it('a 101 that negotiates permessage-deflate nobody offered is refused (502)', async () => {
    const r = await session('ws.turret.test', '/deflate', []);
    assert.match(r.head, /^HTTP\/1\.1 502/);
    assert.match(r.head, /x-turret-error: upstream_protocol_error/i);
    assert.equal((await recordFor('/deflate')).code, 'upstream_protocol_error');
  });

  it('refused handshakes are relayed like any response: codings checked, Content-Length honoured, headers scrubbed', async () => {
    const h = await issue('chat');
    for (const p of ['/te-gzip', '/zstd']) {
      const r = await session('ws.turret.test', p, [], h);
      assert.match(r.head, /^HTTP\/1\.1 502/, p);
      assert.match(r.head, /x-turret-error: upstream_coding_unsupported/i, p);
      assert.equal((await recordFor(p)).code, 'upstream_coding_unsupported');
    }
    const r = await session('ws.turret.test', '/length', [], h);
    const text = r.raw.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 401/);
    assert.match(text, new RegExp(`x-echo: Bearer ${h}`, 'i'), 'the echoed secret in a header became the handle');
    assert.ok(!text.includes('smuggled'), 'nothing after the declared length is relayed');
    assert.match(text, /connection: close/i);
    assert.equal((await recordFor('/length')).status, 401);
  });
});
