/**
 * The container image, checked by reading (no Docker engine runs here): the Dockerfile is
 * multi-stage, runs as a non-root user, has a HEALTHCHECK on the admin /healthz, copies only what
 * the build context admits; .dockerignore keeps secrets and state out; deploy/compose.yaml builds
 * and runs the image instead of mounting a checkout into a stock Node image.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .filter((l) => l.trim() && !l.trim().startsWith('#'))
  .map((l) => l.trim());
const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

it('Dockerfile: a build stage and a slim runtime stage', () => {
  const froms = instructions.filter((l) => l.startsWith('FROM '));
  assert.equal(froms.length, 2);
  assert.match(froms[0] ?? '', / AS build$/);
  assert.match(froms[1] ?? '', /-slim$/);
  assert.ok(
    instructions.some((l) => /^COPY --from=build \/src\/dist /.test(l)),
    'the runtime stage takes the built dist/',
  );
  assert.ok(
    instructions.some((l) => /npm prune --omit=dev/.test(l)),
    'no dev dependencies at run time',
  );
});

it('Dockerfile: runs as a non-root user, with a HEALTHCHECK on /healthz and SIGTERM', () => {
  const users = instructions.filter((l) => l.startsWith('USER '));
  assert.equal(users.length, 1);
  assert.doesNotMatch(users[0] ?? '', /^USER (root|0)(:|$)/);
  const runtime = instructions.slice(instructions.findIndex((l, i) => i > 0 && l.startsWith('FROM ')));
  assert.ok(runtime.findIndex((l) => l.startsWith('USER ')) < runtime.findIndex((l) => l.startsWith('ENTRYPOINT ')), 'USER before ENTRYPOINT');
  const hc = instructions.find((l) => l.startsWith('HEALTHCHECK '));
  assert.match(hc ?? '', /http:\/\/127\.0\.0\.1:8751\/healthz/);
  assert.match(instructions.find((l) => l.startsWith('CMD ')) ?? '', /--admin=127\.0\.0\.1:8751/);
  assert.ok(instructions.includes('STOPSIGNAL SIGTERM'));
});

it('Dockerfile: every path copied from the context exists and is not ignored', () => {
  const copies = instructions.filter((l) => l.startsWith('COPY ') && !l.includes('--from='));
  assert.ok(copies.length > 0);
  for (const c of copies) {
    const parts = c.split(/\s+/).slice(1);
    for (const src of parts.slice(0, -1)) {
      assert.ok(existsSync(path.join(ROOT, src)), `${src} exists`);
      assert.ok(!ignored.includes(src), `${src} is not in .dockerignore`);
    }
  }
});

it('.dockerignore keeps secrets, state and the local install out of the context', () => {
  for (const p of ['.git', 'node_modules', 'dist', 'ca', 'var', '.env', '**/.env', '*.key', 'deploy', 'test']) assert.ok(ignored.includes(p), p);
});

it('compose builds the image, mounts no checkout, runs read-only', () => {
  const compose = parse(readFileSync(path.join(ROOT, 'deploy/compose.yaml'), 'utf8')) as {
    services: Record<string, { build?: { context: string }; image?: string; volumes?: string[]; read_only?: boolean; command?: string[] }>;
  };
  const t = compose.services.turret;
  assert.ok(t);
  assert.equal(t.build?.context, '..');
  assert.ok(existsSync(path.join(ROOT, 'deploy', t.build?.context ?? '', 'Dockerfile')));
  assert.ok(!(t.volumes ?? []).some((v) => /^\.\.:/.test(v)), 'no checkout mounted');
  assert.equal(t.read_only, true);
  assert.equal(t.command?.[0], 'start');
  const agent = compose.services.agent;
  assert.ok(!(agent?.volumes ?? []).some((v) => /state\/ca:/.test(v)), 'the agent never mounts the CA directory');
});
