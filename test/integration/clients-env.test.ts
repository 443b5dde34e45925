/**
 * What `turret env` prints and writes for clients: every trust variable points at one bundle
 * (Turret's CA + settings.upstream_ca_file + the system roots), the wget rc file, the Java trust
 * store, the Node preload, presets that would win are unset or combined, and handles are issued
 * only for secrets some rule of the agent could use (#12 item 7). A preload that cannot install
 * stops the program with a clear message instead of letting it run around the proxy.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, startTurret, type TurretProc } from '../helpers/turret.js';
import { UPSTREAM_CA_FILE } from '../helpers/upstream.js';
import { type RuleFile } from '../helpers/rules.js';

const SECRETS = Object.fromEntries(
  ['USED', 'SUFFIX', 'OTHER', 'NORULE', 'PASS', 'EXPIRED', 'PORT', 'ASKED'].map((n) => [`T_${n}`, `fake_${n.toLowerCase()}_${randomBytes(12).toString('hex')}`]),
);

const rules: RuleFile = {
  agents: ['alpha', 'beta'],
  secrets: [
    { name: 'used', from: { env: 'T_USED' }, hosts: ['api.example.test'], env: 'USED_TOKEN' },
    { name: 'suffix', from: { env: 'T_SUFFIX' }, hosts: ['*.svc.example.test'], env: 'SUFFIX_TOKEN' },
    { name: 'other-agent', from: { env: 'T_OTHER' }, hosts: ['beta.example.test'], env: 'OTHER_TOKEN' },
    { name: 'no-rule', from: { env: 'T_NORULE' }, hosts: ['nobody.example.test'], env: 'NORULE_TOKEN' },
    { name: 'passthrough-only', from: { env: 'T_PASS' }, hosts: ['pinned.example.test'], env: 'PASS_TOKEN' },
    { name: 'expired', from: { env: 'T_EXPIRED' }, hosts: ['old.example.test'], env: 'EXPIRED_TOKEN' },
    { name: 'other-port', from: { env: 'T_PORT' }, hosts: ['api.example.test:8443'], env: 'PORT_TOKEN' },
    { name: 'asked', from: { env: 'T_ASKED' }, hosts: ['ask.example.test'], env: 'ASKED_TOKEN' },
  ],
  rules: [
    { name: 'alpha-api', agents: ['alpha'], methods: ['read', 'write'], hosts: ['api.example.test', 'x.svc.example.test'] },
    { name: 'beta-api', agents: ['beta'], methods: ['read'], hosts: ['beta.example.test'] },
    { name: 'pinned', agents: ['alpha'], methods: ['any'], hosts: ['pinned.example.test'], passthrough: true },
    { name: 'approvals', agents: ['alpha'], action: 'ask', methods: ['write'], hosts: ['ask.example.test'] },
    { name: 'old', agents: ['alpha'], methods: ['read'], hosts: ['old.example.test'], until: '2020-01-01T00:00:00Z' },
  ],
};

const TRUST = [
  'SSL_CERT_FILE',
  'CURL_CA_BUNDLE',
  'REQUESTS_CA_BUNDLE',
  'GIT_SSL_CAINFO',
  'NODE_EXTRA_CA_CERTS',
  'AWS_CA_BUNDLE',
  'PIP_CERT',
  'npm_config_cafile',
  'CARGO_HTTP_CAINFO',
  'DENO_CERT',
  'BUNDLE_SSL_CA_CERT',
  'HEX_CACERTS_PATH',
  'COMPOSER_CAFILE',
  'HTTPLIB2_CA_CERTS',
  'GRPC_DEFAULT_SSL_ROOTS_FILE_PATH',
];

/** `export K='v'` lines → map (values are single-quoted without embedded quotes here). */
function exportsOf(stdout: string): Map<string, string> {
  return new Map([...stdout.matchAll(/^export ([A-Za-z_][A-Za-z0-9_]*)='([^']*)'$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
}

describe('turret env: client trust, presets and handles', () => {
  let t: TurretProc;
  before(async () => {
    t = await startTurret({ rules: { 'r.yaml': rules }, env: { ...SECRETS, TURRET_ADMIN: 'off' }, startTimeoutMs: 60_000 });
  });
  after(async () => {
    await t?.stop();
    const logs = [t.stdout(), t.stderr(), t.auditText(), readFileSync(path.join(t.caDir, 'handles.jsonl'), 'utf8')].join('\n');
    for (const v of Object.values(SECRETS)) assert.ok(!logs.includes(v), 'no secret in any log');
  });

  it('points every trust variable at one bundle: Turret CA, upstream CA file, system roots', async () => {
    const r = await t.cli(['env', '--agent', 'alpha']);
    assert.equal(r.code, 0, r.stderr);
    const env = exportsOf(r.stdout);
    const bundle = path.join(t.caDir, 'client', 'bundle.pem');
    for (const name of TRUST) assert.equal(env.get(name), bundle, name);
    const text = readFileSync(bundle, 'utf8');
    assert.ok(text.includes(readFileSync(path.join(t.caDir, 'ca.crt'), 'utf8').trim()), "Turret's CA");
    assert.ok(text.includes(readFileSync(UPSTREAM_CA_FILE, 'utf8').trim()), 'the upstream CA file');
    const system = readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8').trim();
    assert.ok(text.includes(system), 'the system roots');
    assert.equal(readFileSync(env.get('WGETRC') ?? '', 'utf8').match(/^ca_certificate = (.*)$/m)?.[1], bundle);
    assert.equal(env.get('GIT_HTTP_PROXY_AUTHMETHOD'), 'basic');
    assert.equal(env.get('NODE_OPTIONS'), `--import=${path.join(ROOT, 'dist/client/preload.js')}`);
    assert.ok(!readFileSync(bundle, 'utf8').includes('PRIVATE KEY'), 'no key in the bundle');
  });

  it('builds a Java trust store with the JDK roots and Turret CA, named by JAVA_TOOL_OPTIONS', async () => {
    const env = exportsOf((await t.cli(['env', '--agent', 'alpha'])).stdout);
    const store = path.join(t.caDir, 'client', 'truststore.p12');
    assert.match(env.get('JAVA_TOOL_OPTIONS') ?? '', new RegExp(`-Djavax\\.net\\.ssl\\.trustStore=${store.replace(/[.]/g, '\\.')} `));
    const list = execFileSync('keytool', ['-list', '-keystore', store, '-storepass', 'changeit'], { encoding: 'utf8' });
    assert.match(list, /^turret-ca,/m);
    assert.match(list, /^turret-upstream-ca,/m);
    assert.ok(Number(/contains (\d+) entries/.exec(list)?.[1] ?? 0) > 50, 'the JDK roots are in it too');
  });

  it('unsets presets that would win and combines NODE_OPTIONS / JAVA_TOOL_OPTIONS', async () => {
    const r = await t.cli(['env', '--agent', 'alpha'], {
      NPM_CONFIG_CAFILE: '/x.pem',
      PIP_PROXY: 'http://127.0.0.1:9',
      Https_Proxy: 'http://127.0.0.1:9',
      NODE_OPTIONS: '--max-old-space-size=300',
      JAVA_TOOL_OPTIONS: '-Dfoo=bar',
    });
    assert.equal(r.code, 0, r.stderr);
    for (const k of ['NPM_CONFIG_CAFILE', 'PIP_PROXY', 'Https_Proxy']) assert.match(r.stdout, new RegExp(`^unset ${k}$`, 'm'));
    const env = exportsOf(r.stdout);
    assert.match(env.get('NODE_OPTIONS') ?? '', /^--import=\/\S+\/preload\.js --max-old-space-size=300$/);
    assert.match(env.get('JAVA_TOOL_OPTIONS') ?? '', /^-Dfoo=bar -Djavax\.net\.ssl\.trustStore=/);
    // Running it again from an environment that already has our options does not repeat them.
    const again = exportsOf((await t.cli(['env', '--agent', 'alpha'], { NODE_OPTIONS: env.get('NODE_OPTIONS') ?? '' })).stdout);
    assert.equal(again.get('NODE_OPTIONS'), env.get('NODE_OPTIONS'));
  });

  it('issues handles only for secrets some rule of the agent could use', async () => {
    const alpha = exportsOf((await t.cli(['env', '--agent', 'alpha'])).stdout);
    for (const k of ['USED_TOKEN', 'SUFFIX_TOKEN', 'ASKED_TOKEN']) assert.match(alpha.get(k) ?? '', /^trt_/, k);
    for (const k of ['OTHER_TOKEN', 'NORULE_TOKEN', 'PASS_TOKEN', 'EXPIRED_TOKEN', 'PORT_TOKEN']) assert.equal(alpha.get(k), undefined, k);
    const beta = exportsOf((await t.cli(['env', '--agent', 'beta'])).stdout);
    assert.match(beta.get('OTHER_TOKEN') ?? '', /^trt_/);
    assert.deepEqual(
      [...beta.keys()].filter((k) => k.endsWith('_TOKEN')),
      ['OTHER_TOKEN'],
    );
    const issued = (await t.cli(['handle', 'list', '--all'])).stdout;
    for (const s of ['no-rule', 'passthrough-only', 'expired', 'other-port']) assert.ok(!issued.includes(`\t${s}\t`), `no handle was ever issued for ${s}`);
  });

  it('the preload stops a program with a clear message when it cannot install', async () => {
    await t.cli(['env', '--agent', 'alpha']);
    const lone = mkdtempSync(path.join(tmpdir(), 'turret-preload-'));
    // The preload away from Turret's installation: its undici cannot be resolved.
    copyFileSync(path.join(ROOT, 'dist/client/preload.js'), path.join(lone, 'preload.mjs'));
    assert.ok(!existsSync(path.join(lone, 'node_modules')));
    const r = spawnSync(process.execPath, ['-e', 'console.log("program ran")'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, NODE_OPTIONS: `--import=${pathToFileURL(path.join(lone, 'preload.mjs')).href}` },
    });
    assert.equal(r.status, 70);
    assert.equal(r.stdout, '', 'the program did not run around the proxy');
    assert.match(r.stderr, /^turret preload \(.*preload\.mjs\): could not route fetch and http\(s\) through Turret's proxy: /);
    assert.match(r.stderr, /removing its --import from NODE_OPTIONS/);
  });
});
