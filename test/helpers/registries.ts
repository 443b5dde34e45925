/**
 * Tiny package registries and an AWS endpoint for the client matrix, each an HTTPS server with
 * the committed test certificate (test/fixtures) on 127.0.0.1 that refuses every request not
 * carrying the REAL credential, and records what it received:
 *
 * - npm: publish (PUT with the tarball attached) and install (packument + tarball), Bearer token;
 * - PEP 503 simple index: one wheel built here, Basic auth `__token__:<token>`;
 * - AWS: S3 PutObject/GetObject and DynamoDB (any JSON target), SigV4 verified with the real key.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type http from 'node:http';
import { verifySigV4, type Verdict } from './sigv4.js';
import { startUpstream, type Upstream } from './upstream.js';

export interface Registry {
  up: Upstream;
  /** Authorization headers received, in order. */
  auths: string[];
  /** Requests refused for a missing or wrong credential. */
  refused: string[];
}

function reply(res: http.ServerResponse, status: number, body: string | Buffer, type = 'application/json', extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

interface Packument {
  name: string;
  versions: Record<string, { dist: { tarball: string } }>;
  'dist-tags': Record<string, string>;
  _attachments?: Record<string, { data: string }>;
}

export async function startNpmRegistry(token: string): Promise<Registry> {
  const packages = new Map<string, Packument>();
  const tarballs = new Map<string, Buffer>();
  const r: Registry = { up: undefined as unknown as Upstream, auths: [], refused: [] };
  r.up = await startUpstream({
    handler: (req, res, body) => {
      const auth = req.headers.authorization ?? '';
      r.auths.push(auth);
      if (auth !== `Bearer ${token}`) {
        r.refused.push(`${req.method} ${req.url}`);
        return reply(res, 401, JSON.stringify({ error: 'authentication required' }), 'application/json', { 'www-authenticate': 'Bearer' });
      }
      const url = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/');
      const tgz = tarballs.get(url);
      if (req.method === 'GET' && tgz) return reply(res, 200, tgz, 'application/octet-stream');
      const name = url.slice(1);
      if (req.method === 'PUT') {
        const doc = JSON.parse(body.toString('utf8')) as Packument;
        for (const [file, att] of Object.entries(doc._attachments ?? {})) tarballs.set(`/${doc.name}/-/${file}`, Buffer.from(att.data, 'base64'));
        // Serve tarballs from this registry whatever host npm wrote into the document.
        for (const v of Object.values(doc.versions)) v.dist.tarball = `https://${req.headers.host}/${doc.name}/-/${path.basename(v.dist.tarball)}`;
        const prev = packages.get(name);
        packages.set(name, { name: doc.name, versions: { ...prev?.versions, ...doc.versions }, 'dist-tags': { ...prev?.['dist-tags'], ...doc['dist-tags'] } });
        return reply(res, 201, JSON.stringify({ ok: true }));
      }
      const pkg = packages.get(name);
      if (req.method === 'GET' && pkg) return reply(res, 200, JSON.stringify(pkg));
      return reply(res, 404, JSON.stringify({ error: 'not found' }));
    },
  });
  return r;
}

/** A minimal pure-Python wheel (`import turretdemo; turretdemo.VALUE`), built with zipfile. */
function buildWheel(dir: string): string {
  const file = path.join(dir, 'turretdemo-1.0-py3-none-any.whl');
  const py = `
import zipfile, sys
files = {
  "turretdemo/__init__.py": "VALUE = 'from-the-private-index'\\n",
  "turretdemo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: turretdemo\\nVersion: 1.0\\n",
  "turretdemo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: turret-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = "".join(f"{n},,\\n" for n in files) + "turretdemo-1.0.dist-info/RECORD,,\\n"
with zipfile.ZipFile(sys.argv[1], "w") as z:
  for n, t in files.items(): z.writestr(n, t)
  z.writestr("turretdemo-1.0.dist-info/RECORD", record)
`;
  execFileSync('/usr/bin/python3', ['-c', py, file]);
  return file;
}

export async function startPypiIndex(token: string): Promise<Registry> {
  const wheelPath = buildWheel(mkdtempSync(path.join(tmpdir(), 'turret-wheel-')));
  const wheel = readFileSync(wheelPath);
  const name = path.basename(wheelPath);
  const sha = createHash('sha256').update(wheel).digest('hex');
  const expected = `Basic ${Buffer.from(`__token__:${token}`).toString('base64')}`;
  const r: Registry = { up: undefined as unknown as Upstream, auths: [], refused: [] };
  r.up = await startUpstream({
    handler: (req, res) => {
      const auth = req.headers.authorization ?? '';
      r.auths.push(auth);
      if (auth !== expected) {
        r.refused.push(`${req.method} ${req.url}`);
        return reply(res, 401, 'authentication required', 'text/plain', { 'www-authenticate': 'Basic realm="index"' });
      }
      if (req.url === '/simple/turretdemo/') return reply(res, 200, `<!DOCTYPE html><html><body><a href="/files/${name}#sha256=${sha}">${name}</a></body></html>`, 'text/html');
      if (req.url === `/files/${name}`) return reply(res, 200, wheel, 'application/octet-stream');
      return reply(res, 404, 'not found', 'text/plain');
    },
  });
  return r;
}

export interface AwsServer {
  up: Upstream;
  verdicts: Verdict[];
  /** S3 objects by path. */
  objects: Map<string, Buffer>;
  /** DynamoDB requests: target and JSON body. */
  dynamo: Array<{ target: string; body: string }>;
}

export async function startAwsServer(id: string, key: string): Promise<AwsServer> {
  const s: AwsServer = { up: undefined as unknown as Upstream, verdicts: [], objects: new Map(), dynamo: [] };
  s.up = await startUpstream({
    handler: (req, res, body) => {
      void verifySigV4(id, key, req, body).then((v) => {
        s.verdicts.push(v);
        if (!v.ok) return reply(res, 403, `<Error><Code>SignatureDoesNotMatch</Code><Message>${v.why}</Message></Error>`, 'application/xml');
        const target = req.headers['x-amz-target'];
        if (typeof target === 'string') {
          s.dynamo.push({ target, body: body.toString('utf8') });
          return reply(res, 200, '{}', 'application/x-amz-json-1.0');
        }
        const p = (req.url ?? '/').split('?')[0] ?? '/';
        if (req.method === 'PUT') {
          s.objects.set(p, body);
          return reply(res, 200, '', 'text/plain', { etag: `"${createHash('md5').update(body).digest('hex')}"` });
        }
        const obj = s.objects.get(p);
        if (req.method === 'GET' && obj) return reply(res, 200, obj, 'application/octet-stream');
        return reply(res, 404, '<Error><Code>NoSuchKey</Code></Error>', 'application/xml');
      });
    },
  });
  return s;
}
