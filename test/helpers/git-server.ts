/**
 * A local git smart-HTTP server for the secrets tests: `git http-backend` (CGI) behind a Node
 * HTTPS server using the committed test CA, requiring HTTP Basic auth with a password only the
 * test knows (the real secret). Unauthenticated requests get 401 + WWW-Authenticate, which is
 * what makes git send the (handle) credentials it was given.
 */
import { spawn, execFileSync } from 'node:child_process';
import https from 'node:https';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { FIXTURES } from './upstream.js';

export interface GitServer {
  port: number;
  root: string;
  /** Authorization headers received (to assert the real secret arrived). */
  auths: string[];
  close(): Promise<void>;
}

const BACKEND = '/usr/lib/git-core/git-http-backend';

function git(cwd: string, args: string[]): void {
  execFileSync('git', args, {
    cwd,
    stdio: 'ignore',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.invalid', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.invalid' },
  });
}

/** A bare repository `repo.git` with one commit holding README.md. */
export function makeRepo(): string {
  const root = mkdtempSync(path.join(tmpdir(), 'turret-git-'));
  const work = path.join(root, 'work');
  git(root, ['init', '-q', '-b', 'main', work]);
  writeFileSync(path.join(work, 'README.md'), 'hello from the test repo\n');
  git(work, ['add', 'README.md']);
  git(work, ['commit', '-q', '-m', 'init']);
  git(root, ['clone', '-q', '--bare', work, path.join(root, 'repo.git')]);
  return root;
}

export async function startGitServer(o: { user: string; password: string }): Promise<GitServer> {
  const root = makeRepo();
  const auths: string[] = [];
  const expected = `Basic ${Buffer.from(`${o.user}:${o.password}`).toString('base64')}`;
  const server = https.createServer({ key: readFileSync(path.join(FIXTURES, 'upstream.key')), cert: readFileSync(path.join(FIXTURES, 'upstream.crt')) }, (req, res) => {
    const auth = req.headers.authorization ?? '';
    if (auth) auths.push(auth);
    if (auth !== expected) {
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Basic realm="test"', 'content-length': 0 });
      res.end();
      return;
    }
    const url = new URL(req.url ?? '/', 'https://git.test');
    const cgi = spawn(BACKEND, [], {
      env: {
        PATH: process.env.PATH ?? '',
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        REMOTE_USER: o.user,
        REQUEST_METHOD: req.method ?? 'GET',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
        GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
      },
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (c: Buffer) => {
      if (headersDone) return void res.write(c);
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const i = line.indexOf(':');
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = parseInt(v, 10);
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => res.end());
    cgi.on('error', () => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    root,
    auths,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
